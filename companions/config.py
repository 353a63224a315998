"""Advanced per-companion settings kept in ``Companion.config``."""

from __future__ import annotations

from typing import Any

IMAGE_MODES = [("on_request", "Only when I ask"), ("every_reply", "With every reply")]

DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "max_reply_tokens": 400,
    "image_mode": "on_request",
}
LIMITS = {"temperature": (0.0, 2.0), "max_reply_tokens": (50, 2000)}


def effective_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the stored values (unknown keys are kept, e.g. from imports)."""
    return {**DEFAULTS, **(config or {})}
