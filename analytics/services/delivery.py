"""Sending one alert: a JSON POST, with a timeout, retries and every attempt recorded.

Runs in the task cluster (``analytics.tasks.alert_deliver``), never in a run's transaction.
The rules for outbound calls, since the URL came from a user:

- the URL is checked against ``SCRIPTOPS_ALERT_URL_ALLOWLIST`` again before sending (the
  list may have shrunk since the run was requested): ``refused`` if it is off the list;
- redirects are never followed: a 3xx could point at an internal address the allowlist
  would refuse, so it counts as a failure (not retried: the answer would be the same);
- each attempt has ``SCRIPTOPS_ALERT_TIMEOUT`` seconds; 5xx, 408, 429 and network errors
  are retried with exponential backoff, up to ``SCRIPTOPS_ALERT_RETRIES`` attempts in all;
- the outcome of each attempt is written as it happens (``attempts``, ``response_code``,
  one line per attempt in ``error``), so a delivery in progress is visible on the run;
- nothing is raised: a task that raises would only be logged by django-q2, the row would
  stay ``pending`` forever.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from typing import Any, Final

from django.utils import timezone

from analytics import conf
from analytics.models import AlertDelivery, DeliveryStatus
from analytics.services.alerts import alert_url_check
from core.errors import InvalidInput

logger = logging.getLogger(__name__)

# The first retry waits this long, each next one twice as long (tests set it to 0).
BACKOFF_SECONDS: float = 1.0
BACKOFF_MAX: Final = 30.0
USER_AGENT: Final = "ScriptOps-alerts/1"
RETRIED_CODES: Final = frozenset({408, 429})
MAX_ERROR: Final = 4000  # characters of the per-attempt log kept


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse to follow redirects: urllib then raises HTTPError with the 3xx code."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, timeout: float) -> tuple[int | None, str]:
    """One attempt: (HTTP status or None, what went wrong or "")."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(1024)  # let the server finish its answer; the body is not needed
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
        location = exc.headers.get("Location") if exc.headers else None
        exc.close()
        if 300 <= code < 400:
            return code, f"HTTP {code}: redirect to {location or '?'} not followed"
        return code, f"HTTP {code}"
    except urllib.error.URLError as exc:
        return None, f"{type(exc.reason).__name__}: {exc.reason}"
    except TimeoutError:
        return None, f"timed out after {timeout:g} s"
    except (OSError, HTTPException, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _retryable(code: int | None) -> bool:
    return code is None or code >= 500 or code in RETRIED_CODES


def _finish(delivery_id: int, status: str, **fields: Any) -> None:
    AlertDelivery.objects.filter(pk=delivery_id).update(status=status, finished_at=timezone.now(), **fields)


def alert_deliver(*, delivery_id: int) -> str | None:
    """Send a ``pending`` delivery; returns its final status (None when there was nothing
    to send: the row is gone or was already handled). Never raises."""
    try:
        return _deliver(delivery_id)
    except Exception as exc:  # a bug or a lost database: record it if we can, never raise
        logger.exception("alert delivery %s failed", delivery_id)
        try:
            _finish(
                delivery_id,
                DeliveryStatus.FAILED,
                error=f"internal error: {type(exc).__name__}: {exc}"[:MAX_ERROR],
            )
        except Exception:
            logger.exception("could not record the failure of alert delivery %s", delivery_id)
        return DeliveryStatus.FAILED


def _deliver(delivery_id: int) -> str | None:
    delivery = AlertDelivery.objects.filter(pk=delivery_id).first()
    # Only a delivery never tried: a task run twice must not send twice.
    if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempts:
        return None
    try:
        alert_url_check(delivery.url)
    except InvalidInput as exc:
        _finish(delivery_id, DeliveryStatus.REFUSED, error=exc.message)
        return DeliveryStatus.REFUSED
    body = json.dumps(delivery.payload, allow_nan=False, default=str).encode("utf-8")
    attempts_max = conf.alert_retries()
    timeout = conf.alert_timeout()
    log: list[str] = []
    for attempt in range(1, attempts_max + 1):
        code, problem = _post(delivery.url, body, timeout)
        if not problem and code is not None and 200 <= code < 300:
            _finish(
                delivery_id, DeliveryStatus.SENT, attempts=attempt, response_code=code, error="\n".join(log)
            )
            return DeliveryStatus.SENT
        if not problem:
            problem = f"HTTP {code}"
        log.append(f"attempt {attempt}: {problem}")
        error = "\n".join(log)[-MAX_ERROR:]
        last = attempt == attempts_max or not _retryable(code)
        if last:
            _finish(delivery_id, DeliveryStatus.FAILED, attempts=attempt, response_code=code, error=error)
            return DeliveryStatus.FAILED
        AlertDelivery.objects.filter(pk=delivery_id).update(attempts=attempt, response_code=code, error=error)
        time.sleep(min(BACKOFF_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX))
    return DeliveryStatus.FAILED  # not reached: the last attempt returns above
