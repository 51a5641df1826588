"""ASGI entry point: HTTP through Django, websockets through Channels (served by daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scriptops.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from runs.routing import websocket_urlpatterns  # noqa: E402
from scriptops.ws_auth import WebsocketAuthStack, origin_checked  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin check: a page on another site cannot ride a signed-in user's cookie.
        "websocket": origin_checked(WebsocketAuthStack(URLRouter(websocket_urlpatterns))),
    }
)
