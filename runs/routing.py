from django.urls import re_path

from runs import consumers

websocket_urlpatterns = [
    re_path(r"^ws/runs/?$", consumers.RunsFeedConsumer.as_asgi()),
    re_path(r"^ws/runs/(?P<run_id>[0-9a-fA-F-]{32,36})/?$", consumers.RunConsumer.as_asgi()),
]
