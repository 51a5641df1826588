"""services of the analytics app (being built)."""
