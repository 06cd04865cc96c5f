"""The pricing engine: demand events in, priced decisions out, outcomes learnt."""
