"""A run's output store: see :mod:`runs.logstore.store` (format and logic),
:mod:`runs.logstore.files` (local or database) and :mod:`runs.logstore.database`."""

from runs.logstore.store import (
    STREAM_CODES,
    STREAM_NAMES,
    Chunk,
    Line,
    LogFollower,
    LogReader,
    LogWriter,
    Record,
    count_lines,
    parse_index,
    remove_store,
)

__all__ = [
    "STREAM_CODES",
    "STREAM_NAMES",
    "Chunk",
    "Line",
    "LogFollower",
    "LogReader",
    "LogWriter",
    "Record",
    "count_lines",
    "parse_index",
    "remove_store",
]
