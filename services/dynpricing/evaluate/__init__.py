"""Off-policy evaluation: what a pricing policy would have earned on the logged traffic."""
