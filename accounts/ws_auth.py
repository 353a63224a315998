"""Websocket authentication by personal API token (``Authorization: Bearer …``).

Sits inside Channels' session ``AuthMiddlewareStack``: when a Bearer token is
present it decides the user (a bad token means anonymous, never a fallback to
the session); otherwise the session's user stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from accounts.tokens import token_authenticate
from companionhub.db_async import db_call


def bearer_token(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
            return ""
    return None


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        secret = bearer_token(scope)
        if secret is not None:
            token = await db_call(token_authenticate)(secret) if secret else None
            scope = dict(scope)
            scope["user"] = token.user if token else AnonymousUser()
            scope["api_token_id"] = token.pk if token else None
        return await super().__call__(scope, receive, send)
