"""selectors of the analytics app (being built)."""
