"""Pure pricing core: numpy only, no I/O."""
