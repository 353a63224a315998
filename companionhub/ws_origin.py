"""The websocket handshake's ``Origin`` must be the site's own: scheme, host and port.

Channels' ``AllowedHostsOriginValidator`` compares host names only, so a page
on another port of the same host, or plain ``http``, could open a socket
with a visitor's cookie. This validator applies the rules of Django's CSRF
origin check (``CsrfViewMiddleware._origin_verified``) to the handshake:

* the Origin equals the site's own origin as this request sees it:
  ``https`` when the connection is secure or, with ``SECURE_PROXY_SSL_HEADER``
  set (``BEHIND_TLS_PROXY=True``), when the proxy says so, else ``http``;
  then the ``Host`` header, which must match ``ALLOWED_HOSTS``; or
* it is listed in ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com``
  patterns included).

A missing, repeated or ``null`` Origin is refused. Settings are read on each
handshake, so ``override_settings`` works in tests. Daphne puts no ``scheme``
in a websocket scope; a Daphne serving TLS itself (no proxy) needs its
``https://`` origin in ``CSRF_TRUSTED_ORIGINS``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

Scope = dict[str, Any]


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers") or () if key.lower() == name]


def _scheme(scope: Scope) -> str:
    """ "https" or "http", as Django's ``request.scheme`` would say for this connection."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        values = _headers(scope, header)
        if values:
            return "https" if values[0].split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def _host(scope: Scope, scheme: str) -> str | None:
    """The request's host[:port] when it is one of ``ALLOWED_HOSTS`` (Django's ``get_host``)."""
    hosts = _headers(scope, b"host")
    if hosts:
        host = hosts[0]
    elif server := scope.get("server"):
        name, port = server[0], str(server[1])
        host = name if port == ("443" if scheme == "https" else "80") else f"{name}:{port}"
    else:
        return None
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return host if domain and validate_host(domain, allowed) else None


def origin_allowed(scope: Scope) -> bool:
    origins = _headers(scope, b"origin")
    if len(origins) != 1 or origins[0] in ("", "null"):
        return False
    origin = origins[0]
    scheme = _scheme(scope)
    host = _host(scope, scheme)
    if host is not None and origin == f"{scheme}://{host}":
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in (o for o in trusted if "*" not in o):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    patterns = (urlsplit(o) for o in trusted if "*" in o)
    return any(
        p.scheme == parsed.scheme and is_same_domain(parsed.netloc, p.netloc.lstrip("*")) for p in patterns
    )


class SiteOriginValidator(BaseMiddleware):
    """Refuse a websocket handshake whose Origin is not the site's own (see the module docstring)."""

    # Any, as in Channels' own middleware protocol: what arrives is whatever the server sends.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await super().__call__(scope, receive, send)
