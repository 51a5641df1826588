"""The one exception handler: every error of the API answers the shape of :mod:`core.errors`.

Domain errors are mapped to their HTTP status here, and only here; DRF's own exceptions
(authentication, permissions, parsing, throttling, serializer validation) get the same
shape. Also the JSON 404/500 handlers of the whole site.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    TooLarge,
    Unsupported,
    error_body,
    first_message,
)

logger = logging.getLogger(__name__)

STATUS: dict[type[DomainError], int] = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    Forbidden: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Gone: status.HTTP_410_GONE,
    TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    Unsupported: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
}


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def domain_error_body(exc: DomainError) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return error_body("validation_error", first_message(exc.fields), exc.fields)
    return error_body(exc.code, exc.message)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(domain_error_body(exc), status=status_of(exc))
    # DRF turns Django's Http404 and PermissionDenied into API exceptions inside its own
    # handler; convert them first so they get our error shape too.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    elif isinstance(exc, SuspiciousOperation):
        # Raised while DRF reads the request (more form fields or files than
        # DATA_UPLOAD_MAX_NUMBER_FIELDS/FILES, a malformed multipart body): outside a DRF
        # view Django answers 400 for these, inside one they used to end as a 500.
        exc = exceptions.ParseError(str(exc) or "The request is malformed.")
    elif isinstance(exc, RecursionError):
        # json.load raises RecursionError (not ValueError, which the parsers catch) on
        # input such as 100,000 nested "[": the client's fault, not the server's.
        exc = exceptions.ParseError("The request is nested too deeply.")
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            error_body("internal_error", "Internal server error."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", first_message(exc.detail), details)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(str(code), first_message(exc.detail))
    return response


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"No such resource: {request.path}"), status=404)


def json_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "Internal server error."), status=500)


# -- the site's error pages: JSON for the API, an HTML page for a browser ------------------
# Paths that only ever answer machines: they keep JSON whatever the Accept header says.
_MACHINE_PREFIXES = ("/api/", "/ws/", "/events/", "/webhooks/", "/hooks/")

_PAGES = {
    400: ("Bad request", "The request could not be understood. Check the address and try again."),
    403: ("Not allowed", "Your account's role does not allow this page. Ask an admin if you need it."),
    404: ("Page not found", "There is nothing at this address. It may have moved, or the link is mistyped."),
    500: (
        "Something went wrong",
        "The server hit an error it did not expect. It was logged; try again in a moment.",
    ),
}


def wants_html(request: HttpRequest) -> bool:
    """A browser asking for a page (``Accept: text/html``), outside the API's paths."""
    if request.path.startswith(_MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("Accept", "")


def _page(status: int) -> HttpResponse:
    title, message = _PAGES[status]
    # No request context: an error page must render whatever broke (sessions, the
    # database, a context processor).
    body = loader.render_to_string(
        "errors/error.html", {"status": status, "title": title, "message": message}
    )
    return HttpResponse(body, status=status, content_type="text/html; charset=utf-8")


def error_400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return _page(400)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return _page(403)
    return JsonResponse(error_body("permission_denied", "You do not have permission for this."), status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(404) if wants_html(request) else json_404(request, exception)


def error_500(request: HttpRequest) -> HttpResponse:
    return _page(500) if wants_html(request) else json_500(request)
