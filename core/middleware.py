"""Request hygiene that applies before any view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, JsonResponse

from core.audit import current_request
from core.errors import error_body
from core.principals import csrf_header_alias


class RejectNulMiddleware:
    """Refuse NUL characters in the query string with a 400.

    No legitimate filter or search contains one, and PostgreSQL rejects them in text
    parameters — which would otherwise surface as a 500 from whichever filter got it.
    Works in both sync and async stacks (the SSE views are async).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _refusal(request: HttpRequest) -> JsonResponse | None:
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return JsonResponse(
                    error_body("invalid_query", f"The query parameter {key!r} contains a NUL character."),
                    status=400,
                )
        return None

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        return self._refusal(request) or await self.get_response(request)


class CsrfHeaderAliasMiddleware:
    """Accept seed 003's ``X-CSRF-Token`` header beside Django's ``X-CSRFToken``.

    Copies it where ``CsrfViewMiddleware`` (and ``core.principals.csrf_failure``)
    read the token, so it must come before ``CsrfViewMiddleware``. A request that
    sends both keeps Django's.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        csrf_header_alias(request.META)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> Any:
        csrf_header_alias(request.META)
        return await self.get_response(request)


class AuditContextMiddleware:
    """Keep the request being served in ``core.audit.current_request`` for the audit log.

    Services record who did what without taking the request as an argument: the
    recorder reads the actor (``request.user``, set by then by the session or DRF's
    authentication), the client address and the user agent from it. Reset afterwards,
    so nothing leaks into the next request a thread or task serves.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)

    async def __acall__(self, request: HttpRequest) -> Any:
        token = current_request.set(request)
        try:
            return await self.get_response(request)
        finally:
            current_request.reset(token)
