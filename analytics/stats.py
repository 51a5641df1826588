"""stats of the analytics app (being built)."""
