"""The outcome simulator: plays the customers and measures regret."""
