"""The chat's websocket routes: one consumer serves all three (docs/websocket.md)."""

from django.urls import path

from chat.consumers import ConversationConsumer

# Channels routes websockets with Django's path(), which django-stubs types for views only.
websocket_urlpatterns = [
    path("ws/conversation/<int:conversation_id>/", ConversationConsumer.as_asgi()),  # type: ignore[arg-type]
    # Kept for older clients: a companion's latest one-to-one chat, and a group.
    path("ws/chat/<int:companion_id>/", ConversationConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/group/<int:group_id>/", ConversationConsumer.as_asgi()),  # type: ignore[arg-type]
]
