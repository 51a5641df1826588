"""ASGI entry point: HTTP through Django, websockets through Channels (served by daphne)."""

import functools
import os
import pprint

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scriptops.settings")
django.setup(set_prefix=False)  # what get_asgi_application() does before its handler

from scriptops.asgi_handler import ScriptOpsASGIHandler  # noqa: E402

# Django's handler with sync requests served in one hop on reused threads (see the module).
django_asgi_app = ScriptOpsASGIHandler()

import autobahn.twisted.websocket as autobahn_twisted  # noqa: E402
import autobahn.websocket.protocol as autobahn_protocol  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from core.ws_auth import WebsocketAuthStack, origin_checked  # noqa: E402
from runs.consumers import NotFoundConsumer  # noqa: E402
from runs.routing import websocket_urlpatterns  # noqa: E402

websocket_routes = [
    *websocket_urlpatterns,
    # Last: any other path is closed with 4404 rather than failing the handshake (500).
    re_path(r"", NotFoundConsumer.as_asgi()),
]


def _plain(value: object, *args: object, **kwargs: object) -> object:
    return value


# autobahn formats the arguments of its debug log lines (``hltype``/``hlval``: colours,
# qualified names) on every websocket frame sent and received, even with debug logging
# off: ~8 % of daphne's CPU with 200 sockets streaming (py-spy, bench N = 200). The log
# lines still carry the values when debug logging is on, uncoloured.
for _module in (autobahn_protocol, autobahn_twisted):
    _module.hltype = _plain  # type: ignore[attr-defined]  # module attributes, set for speed
    _module.hlval = _plain  # type: ignore[attr-defined]


class _Formatted:
    """``pprint.pformat(value)``, computed only if the log line is written."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)


# The same for the settings autobahn pretty-prints on every new websocket for a debug
# line: ~5 % of daphne's CPU while 200 sockets connect at once (py-spy).
setattr(autobahn_protocol, "pformat", _Formatted)  # noqa: B010 - a module global, called only as pformat(value)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check: a page on another site cannot ride a signed-in user's cookie.
        "websocket": origin_checked(WebsocketAuthStack(URLRouter(websocket_routes))),
    }
)

import twisted.web.http as twisted_http  # noqa: E402

_parse_content_type = twisted_http._parseContentType
CONTENT_TYPE_KEPT_UP_TO = 128  # characters: longer values are parsed each time


@functools.lru_cache(maxsize=64)
def _content_type_kept(line: bytes) -> bytes:
    return _parse_content_type(line)


def _content_type(line: bytes) -> bytes:
    """Twisted's parse of a request's Content-Type, kept per value: it builds an
    ``email.message.EmailMessage`` for every request with a body (1.6 % of daphne's CPU in
    bursts of launches, py-spy), and clients send the same few values."""
    return _content_type_kept(line) if len(line) <= CONTENT_TYPE_KEPT_UP_TO else _parse_content_type(line)


twisted_http._parseContentType = _content_type

from core.heap import settle  # noqa: E402

# What daphne serves with is loaded: keep the collector off it (see core.heap).
settle()
