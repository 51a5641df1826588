"""SQLite with fair writers (see ``base``)."""
