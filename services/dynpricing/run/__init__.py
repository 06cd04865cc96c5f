"""``dynpricing run``: the whole pricing loop on one machine."""
