"""What a path must respect before the file system is asked about it.

The kernel refuses a path over ``PATH_MAX`` bytes, or with a name over ``NAME_MAX``,
with ``ENAMETOOLONG`` — which ``pathlib``'s ``exists()``/``is_dir()`` raise instead of
answering False, and which became a 500. A NUL byte cannot be passed to the kernel at
all (``ValueError``), nor can a string that does not encode to bytes. Every parameter
that names a path is checked with :func:`path_check` first, so each of these is a 400
naming the parameter.
"""

from __future__ import annotations

import os

from core.errors import InvalidInput


def _limit(name: str, default: int) -> int:
    try:
        return os.pathconf("/", name)
    except (OSError, ValueError):
        return default


PATH_MAX = _limit("PC_PATH_MAX", 4096)  # bytes, including the terminating NUL
NAME_MAX = _limit("PC_NAME_MAX", 255)  # bytes, one name between slashes


def path_problem(raw: str) -> str | None:
    """Why ``raw`` can never name a file here (a phrase), or None."""
    if "\x00" in raw:
        return "contains a NUL byte"
    try:
        encoded = os.fsencode(raw)
    except UnicodeEncodeError:
        return "contains characters that cannot be encoded as a file name"
    if len(encoded) >= PATH_MAX:
        return f"is too long ({len(encoded)} bytes; the limit is {PATH_MAX - 1})"
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if longest > NAME_MAX:
        return f"has a name that is too long ({longest} bytes; the limit is {NAME_MAX})"
    return None


def path_check(raw: str, *, field: str, error: type[InvalidInput] = InvalidInput) -> None:
    """Raise ``error(field, …)`` (an :class:`InvalidInput`: 400, its details naming
    ``field``) if ``raw`` cannot be a path."""
    problem = path_problem(raw)
    if problem is not None:
        raise error(field, f"The path {problem}.", "invalid_path")
