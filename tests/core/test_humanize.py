from __future__ import annotations

import pytest

from core.humanize import human_bytes, human_duration


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "\u2013"),
        (0.0, "0 ms"),
        (0.8504, "850 ms"),
        (4.23, "4.2 s"),
        (59.94, "59.9 s"),
        (60.0, "1 min"),
        (192.4, "3 min 12 s"),
        (3600.0, "1 h"),
        (3725.0, "1 h 2 min"),
        (86400.0, "1 d"),
        (4 * 86400 + 3 * 3600 + 59, "4 d 3 h"),
        (-2.0, "-2.0 s"),
    ],
)
def test_durations_read_as_durations(seconds: float | None, shown: str) -> None:
    assert human_duration(seconds) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (None, "\u2013"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (40 * 1024**2, "40.0 MiB"),
        (3 * 1024**4, "3072.0 GiB"),
    ],
)
def test_sizes_read_as_sizes(count: int | None, shown: str) -> None:
    assert human_bytes(count) == shown
