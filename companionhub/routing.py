"""Websocket URL routes of the whole site."""

from django.urls import path

from chat.routing import websocket_urlpatterns as chat_patterns
from companionhub.consumers import PingConsumer

# Channels routes websockets with Django's path(), which django-stubs types for views only.
websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),  # type: ignore[arg-type]
    *chat_patterns,
]
