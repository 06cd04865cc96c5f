"""Offline experiment: run pricing policies against a known market and score them."""
