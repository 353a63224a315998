"""Which LLM and image back ends are configured, for pages and /healthz.

The chat app owns the clients; this module only reads configuration, so the
foundation can tell a visitor that the offline demo back ends are in use.
"""

from __future__ import annotations

from django.conf import settings


def llm_backend_name() -> str:
    if settings.LLM_BASE_URL:
        return "openai-compatible"
    if settings.NOVITA_KEY:
        return "novita"
    return "demo"


def image_backend_name() -> str:
    if settings.SD_API_URL:
        return "sd-webui"
    if settings.IMAGE_API_URL:
        return "openai-images"
    return "demo"


def demo_backends() -> list[str]:
    """Names of the kinds ('LLM', 'images') running on offline demo back ends."""
    kinds = []
    if llm_backend_name() == "demo":
        kinds.append("LLM")
    if image_backend_name() == "demo":
        kinds.append("images")
    return kinds
