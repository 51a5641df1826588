"""API key guessing: a count of bad keys per client address, refused with 429 past a limit.

Every request that brings a key an address has no right to (unknown, expired, revoked)
counts one failure for that address in a sliding window of ``SCRIPTOPS_API_KEY_FAILURE_WINDOW``
seconds, with the same cache-backed counter as the API's rate limit
(:func:`core.counters.count_hit`: one atomic increment, shared by all processes through
the cache). Past ``SCRIPTOPS_API_KEY_FAILURE_LIMIT`` failures every key from that address
is refused — a *valid* one too, before it is even looked up: otherwise a right guess
would still be told apart from a wrong one. Refused requests are not counted, so a
client sharing the address with a guesser gets back in once the window has passed.

The address is the one daphne reports (``REMOTE_ADDR``, ``scope["client"]``): behind a
proxy daphne's ``--proxy-headers`` (as ``serve`` starts it) takes it from
``X-Forwarded-For``. A caller with no address (an in-process test) is not counted.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import caches

from core.counters import count_hit

PREFIX = "scriptops:badkey"


class TooManyBadKeys(Exception):
    """This address sent too many bad keys recently. Answer 429 (websockets: close 4429)."""

    def __init__(self, retry_after: int):
        super().__init__(f"Too many invalid API keys from this address. Retry in {retry_after} s.")
        self.retry_after = retry_after


def _window(now: float) -> tuple[int, float, int]:
    """(window number, seconds into it, window length)."""
    length = max(1, int(settings.API_KEY_FAILURE_WINDOW))
    window = int(now // length)
    return window, now - window * length, length


def _keys(address: str, window: int) -> tuple[str, str]:
    return f"{PREFIX}:{address}:{window}", f"{PREFIX}:{address}:{window - 1}"


def bad_keys_check(*, address: str | None) -> None:
    """Raise :class:`TooManyBadKeys` when ``address`` is over the limit (reads, counts nothing)."""
    if not address:
        return
    window, into, length = _window(time.time())
    current_key, previous_key = _keys(address, window)
    counts = caches["default"].get_many([current_key, previous_key])
    current, previous = int(counts.get(current_key) or 0), int(counts.get(previous_key) or 0)
    # The sliding-window estimate of core.throttling: the previous window weighs what of
    # it still lies within one window length of now.
    if previous * (1.0 - into / length) + current < settings.API_KEY_FAILURE_LIMIT:
        return
    # Past the limit within this window alone, its count still weighs in the next one.
    wait = (length - into) + (length if current >= settings.API_KEY_FAILURE_LIMIT else 0)
    raise TooManyBadKeys(max(1, math.ceil(wait)))


def bad_key_record(*, address: str | None) -> None:
    """Count one bad key from ``address``."""
    if not address:
        return
    window, _into, length = _window(time.time())
    current_key, previous_key = _keys(address, window)
    count_hit(current_key, previous_key, ttl=2 * length)


def bad_keys_reset(*, address: str) -> None:
    """Forget the bad keys of ``address`` (lifts its refusal at once)."""
    window, _into, _length = _window(time.time())
    caches["default"].delete_many([*_keys(address, window), *_keys(address, window + 1)])
