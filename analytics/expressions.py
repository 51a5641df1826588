"""expressions of the analytics app (being built)."""
