"""Which LLM and image back ends serve a companion with no choice of its own, for pages and /healthz.

The chat app owns connections and clients and registers a resolver here
(``register_resolver`` in chat/apps.py): it names the provider of the default
connection of each kind, ``"demo"`` when there is none. This module imports
no app; before the resolver is registered, or when the database cannot be
asked (the database-unavailable page also shows the banner), it answers from
the environment variables alone, as the environment would seed them.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.conf import settings

log = structlog.get_logger(__name__)

# kind ("llm" or "image") -> provider name of the default connection, or "demo".
Resolver = Callable[[str], str]
_resolver: Resolver | None = None


def register_resolver(resolver: Resolver) -> None:
    global _resolver
    _resolver = resolver


def _env_llm() -> str:
    if settings.LLM_BASE_URL:
        return "openai-compatible"
    if settings.NOVITA_KEY:
        return "novita"
    return "demo"


def _env_image() -> str:
    if settings.SD_API_URL:
        return "sd-webui"
    if settings.IMAGE_API_URL:
        return "openai-images"
    return "demo"


def _resolved(kind: str, fallback: Callable[[], str]) -> str:
    if _resolver is None:
        return fallback()
    try:
        return _resolver(kind)
    except Exception as exc:  # no database right now: the environment still tells the truth
        log.debug("backend_name_from_environment", kind=kind, error=type(exc).__name__)
        return fallback()


def llm_backend_name() -> str:
    return _resolved("llm", _env_llm)


def image_backend_name() -> str:
    return _resolved("image", _env_image)


def demo_backends() -> list[str]:
    """Names of the kinds ('LLM', 'images') running on offline demo back ends."""
    kinds = []
    if llm_backend_name() == "demo":
        kinds.append("LLM")
    if image_backend_name() == "demo":
        kinds.append("images")
    return kinds
