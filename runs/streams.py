"""Server-sent events: ``GET /api/runs/{id}/stream`` and ``POST /api/execute`` (seed 003).

Plain async Django views (DRF has no async views); they authenticate with
:func:`core.principals.principal_from`, as the REST API does, check roles and answer
errors in the same shape. The stream also takes ``?api_key=`` (a browser's
``EventSource`` cannot set headers). Each message is ``id: <line offset>`` +
``data: {json}`` + a blank line, with types ``log_entry``, ``status`` and finally
``exit`` (``{"type": "exit", "code": N}``), built in :mod:`runs.events`.
Resume with ``Last-Event-ID`` or ``?after=``. The stream also takes
``?format=batch``: one ``log_batch`` frame per batch of lines (its id the batch's last
line) instead of one ``log_entry`` frame per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from core.errors import error_body
from core.key_guard import TooManyBadKeys
from core.models import User
from core.principals import CsrfRefused, InvalidApiKey, Principal, csrf_failure, principal_from
from core.roles import Capability, role_allows
from runs.events import (
    Message,
    SseFrame,
    sse_error,
    sse_exit,
    sse_log_batch,
    sse_log_entry,
    sse_queued,
    sse_status,
)
from runs.live import RunWatch
from runs.models import Run
from runs.serializers import RunRequestSerializer, RunSerializer
from runs.services import run_control, run_enqueue

logger = logging.getLogger(__name__)
KEEPALIVE = 15.0


def _principal(request: HttpRequest, *, query_key: bool) -> Principal | None:
    return principal_from(
        headers=request.headers,
        query=request.GET if query_key else None,
        session_user=request.user,
        csrf=lambda: csrf_failure(request),
        address=request.META.get("REMOTE_ADDR"),
    )


def _forbidden() -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Your role does not allow this action."), status=403)


async def _authorise(
    request: HttpRequest, capability: int, *, query_key: bool = False
) -> tuple[User | None, JsonResponse | None]:
    """(the caller, None) or (None, the refusal). ``query_key``: accept ``?api_key=``."""
    try:
        principal = await sync_to_async(_principal)(request, query_key=query_key)
    except TooManyBadKeys as exc:
        refusal = JsonResponse(error_body("throttled", str(exc)), status=429)
        refusal["Retry-After"] = str(exc.retry_after)
        return None, refusal
    except InvalidApiKey as exc:
        return None, JsonResponse(error_body("authentication_failed", str(exc)), status=401)
    except CsrfRefused as exc:
        # The role answers first: a readonly session learns it may not, token or not.
        if not role_allows(exc.principal.role, capability):
            return None, _forbidden()
        return None, JsonResponse(error_body("csrf_failed", "CSRF token missing or incorrect."), status=403)
    if principal is None:
        return None, JsonResponse(
            error_body("not_authenticated", "Authentication credentials were not provided."), status=401
        )
    if not role_allows(principal.role, capability):
        return None, _forbidden()
    return principal.user, None


def _sse(payload: SseFrame, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(payload, default=str)}\n\n".encode()


async def _sse_stream(
    run: Run, *, after: int, batch: bool = False, on_close: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[bytes]:
    """Flatten a run's live messages into SSE frames, ending with ``exit``."""
    watch = RunWatch(run, after=after, batch=batch)
    stream = watch.messages(include_events=False)
    finished = False
    # The next message, awaited across keep-alives: a timeout must not cancel it (a
    # cancelled ``__anext__`` ends the generator, and the stream with it).
    pending: asyncio.Future[Message] | None = None
    try:
        yield b": connected\n\n"
        while True:
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                yield b": keep-alive\n\n"
                continue
            arrived, pending = pending, None
            try:
                item = arrived.result()
            except StopAsyncIteration:
                break
            if item["type"] == "log_batch":
                yield _sse(sse_log_batch(item["data"]), item["data"]["last_offset"])
            elif item["type"] == "log_entry":
                yield _sse(sse_log_entry(item["data"]), item["data"]["offset"])
            elif item["type"] == "status":
                yield _sse(sse_status(item["data"]))
            elif item["type"] == "execution_completed":
                finished = True
                yield _sse(sse_exit(item["data"]), item["data"]["last_offset"])
            elif item["type"] == "error":
                yield _sse(sse_error(item["data"]))
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(BaseException):
            await stream.aclose()
        if not finished and on_close is not None:
            await on_close()


def _streaming(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _after(request: HttpRequest) -> int | None:
    raw = request.GET.get("after") or request.headers.get("Last-Event-ID") or "0"
    return int(raw) if raw.isdigit() else None


@csrf_exempt
async def run_stream(request: HttpRequest, pk: str) -> HttpResponseBase:
    """``GET /api/runs/{id}/stream``: the run's output and status as server-sent events."""
    if request.method != "GET":
        return JsonResponse(
            error_body("method_not_allowed", f"Method {request.method} not allowed."), status=405
        )
    _, denied = await _authorise(request, Capability.READ, query_key=True)
    if denied is not None:
        return denied
    after = _after(request)
    if after is None:
        return JsonResponse(
            error_body("validation_error", "after must be a non-negative integer."), status=400
        )
    try:
        run = await sync_to_async(Run.objects.filter(pk=pk).first)()
    except DjangoValidationError:  # the URL pattern lets through ids such as 36 dashes
        run = None
    if run is None:
        return JsonResponse(error_body("not_found", f"No run {pk}."), status=404)
    return _streaming(_sse_stream(run, after=after, batch=request.GET.get("format") == "batch"))


@csrf_exempt
async def execute(request: HttpRequest) -> HttpResponseBase:
    """``POST /api/execute``: queue a RunRequest and stream it until ``exit``.

    Closing the connection does not stop the run unless ``?cancel_on_disconnect=true``.
    """
    if request.method != "POST":
        return JsonResponse(
            error_body("method_not_allowed", f"Method {request.method} not allowed."), status=405
        )
    user, denied = await _authorise(request, Capability.EXECUTE)
    if denied is not None:
        return denied
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, RecursionError) as exc:
        return JsonResponse(error_body("parse_error", f"The body is not valid JSON: {exc}"), status=400)
    if isinstance(payload, dict):
        payload.pop("session_id", None)  # seed 003 clients send one; runs have their own ids

    def validate_and_queue() -> Run | dict[str, Any]:
        serializer = RunRequestSerializer(data=payload)
        try:
            serializer.is_valid(raise_exception=True)
        except ValidationError as exc:
            details: Any = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            name, problems = next(iter(details.items()), ("request", ["invalid"]))
            text = problems[0] if isinstance(problems, list) and problems else problems
            return error_body("validation_error", f"{name}: {text}", details)
        if serializer.validated_data["dry_run"]:
            return {"plan": serializer.execution_plan()}
        return run_enqueue(params=serializer.run_params(), user=user, source="execute")

    result = await sync_to_async(validate_and_queue)()
    if isinstance(result, dict):
        if "plan" in result:
            return JsonResponse(result["plan"])
        return JsonResponse(result, status=400)
    run = result
    cancel = request.GET.get("cancel_on_disconnect", "").lower() in ("1", "true", "yes")

    async def on_close() -> None:
        if cancel:
            with contextlib.suppress(Exception):
                await sync_to_async(run_control)(run=run, command="cancel", user=user)

    async def body() -> AsyncIterator[bytes]:
        record = await sync_to_async(lambda: dict(RunSerializer(run).data))()
        yield _sse(sse_queued(record))
        async for chunk in _sse_stream(run, after=0, on_close=on_close):
            yield chunk

    response = _streaming(body())
    response["X-Run-Id"] = str(run.pk)
    return response
