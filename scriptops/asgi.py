"""ASGI entry point: HTTP through Django, websockets through Channels (served by daphne)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scriptops.settings")
django.setup(set_prefix=False)  # what get_asgi_application() does before its handler

from scriptops.asgi_handler import ScriptOpsASGIHandler  # noqa: E402

# Django's handler with sync requests served in one hop on reused threads (see the module).
django_asgi_app = ScriptOpsASGIHandler()

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

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check: a page on another site cannot ride a signed-in user's cookie.
        "websocket": origin_checked(WebsocketAuthStack(URLRouter(websocket_routes))),
    }
)
