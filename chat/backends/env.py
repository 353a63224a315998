"""The environment variables as connection rows: ``LLM_*``/``NOVITA_KEY``, ``SD_API_URL``/``IMAGE_API_*``
and ``TTS_*`` (the speech connection) and ``STT_*`` (speech to text).

``connection_sync_from_env`` creates or updates one row per kind flagged
``from_env`` (idempotent: an unchanged environment writes nothing, so cached
clients keyed by ``updated_at`` stay valid). When the variables of a kind are
gone, its row is disabled, not deleted: a companion that chose it keeps the
choice, and re-setting the variables brings it back.

It runs once per process, lazily, at the first back-end lookup (and again
whenever the settings it reads change, which only tests do), from
``manage.py sync_connections``, and at worker start. Lazily rather than at
import: importing ``companionhub.asgi`` must not touch the database.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from chat.backend_models import Connection
from chat.backends.registry import NOVITA_MODEL
from companionhub.secretbox import SecretUnreadable

log = structlog.get_logger(__name__)

ENV_NAMES: dict[str, str] = {
    Connection.Kind.LLM: "Environment LLM",
    Connection.Kind.IMAGE: "Environment images",
    Connection.Kind.AUDIO: "Environment speech",
    Connection.Kind.TRANSCRIPTION: "Environment speech to text",
}


def env_specs() -> dict[str, dict[str, Any]]:
    """What the environment configures, by kind (a kind the environment leaves out is absent)."""
    specs: dict[str, dict[str, Any]] = {}
    llm_timeouts = {
        "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
        "read_timeout": settings.LLM_READ_TIMEOUT,
    }
    if settings.LLM_BASE_URL:
        specs[Connection.Kind.LLM] = {
            "provider": "openai-compatible",
            "base_url": settings.LLM_BASE_URL,
            "api_key": settings.LLM_API_KEY,
            "default_model": settings.LLM_MODEL,
            **llm_timeouts,
        }
    elif settings.NOVITA_KEY:
        specs[Connection.Kind.LLM] = {
            "provider": "novita",
            "base_url": "",
            "api_key": settings.NOVITA_KEY,
            "default_model": settings.LLM_MODEL or NOVITA_MODEL,
            **llm_timeouts,
        }
    image_timeouts = {"connect_timeout": settings.LLM_CONNECT_TIMEOUT, "read_timeout": settings.IMAGE_TIMEOUT}
    if settings.SD_API_URL:
        specs[Connection.Kind.IMAGE] = {
            "provider": "sd-webui",
            "base_url": settings.SD_API_URL,
            "api_key": "",
            "default_model": "",
            **image_timeouts,
        }
    elif settings.IMAGE_API_URL:
        specs[Connection.Kind.IMAGE] = {
            "provider": "openai-images",
            "base_url": settings.IMAGE_API_URL,
            "api_key": settings.IMAGE_API_KEY,
            "default_model": settings.IMAGE_MODEL,
            **image_timeouts,
        }
    if settings.TTS_BASE_URL:
        specs[Connection.Kind.AUDIO] = {
            "provider": "openai-audio",
            "base_url": settings.TTS_BASE_URL,
            "api_key": settings.TTS_API_KEY,
            "default_model": settings.TTS_MODEL,
            "default_voice": settings.TTS_VOICE,
            "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
            "read_timeout": settings.TTS_TIMEOUT,
        }
    transcription = _transcription_spec()
    if transcription is not None:
        specs[Connection.Kind.TRANSCRIPTION] = transcription
    return specs


def _transcription_spec() -> dict[str, Any] | None:
    """The speech-to-text row, from ``STT_*`` (whisper.cpp's server with STT_PROVIDER)."""
    if not settings.STT_BASE_URL:
        return None
    return {
        "provider": settings.STT_PROVIDER,
        "base_url": settings.STT_BASE_URL,
        "api_key": settings.STT_API_KEY,
        "default_model": settings.STT_MODEL,
        "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
        "read_timeout": settings.STT_TIMEOUT,
    }


def env_fingerprint() -> int:
    """Changes when any variable the sync reads changes (a hash: the key is never kept in clear)."""
    specs = env_specs()
    return hash(tuple(sorted((kind, tuple(sorted(spec.items()))) for kind, spec in specs.items())))


def connection_sync_from_env() -> list[Connection]:
    """Create, update or disable the environment's rows; return the enabled ones."""
    specs = env_specs()
    synced = []
    with transaction.atomic():
        for kind in ENV_NAMES:
            row = Connection.objects.select_for_update().filter(kind=kind, from_env=True).first()
            spec = specs.get(kind)
            if spec is None:
                if row is not None and row.enabled:
                    Connection.objects.filter(pk=row.pk).update(enabled=False, is_default=False)
                    log.info("env_connection_disabled", kind=kind)
                continue
            synced.append(_upsert(kind, row, spec))
    return synced


def _upsert(kind: str, row: Connection | None, spec: dict[str, Any]) -> Connection:
    spec = dict(spec)
    api_key = spec.pop("api_key")
    others_default = Connection.objects.filter(kind=kind, is_default=True, from_env=False).exists()
    if row is None:
        row = Connection(kind=kind, from_env=True, name=_free_name(ENV_NAMES[kind]))
        changed = True
    else:
        changed = not row.enabled or any(getattr(row, name) != value for name, value in spec.items())
        try:
            changed = changed or row.api_key != api_key
        except SecretUnreadable:  # sealed under a secret since rotated away: the environment's wins
            changed = True
    if not changed and row.is_default == (not others_default):
        return row
    for name, value in spec.items():
        setattr(row, name, value)
    row.set_api_key(api_key)
    row.enabled = True
    # The environment's row is the default unless a moderator chose another one.
    row.is_default = not others_default
    row.save()
    log.info("env_connection_synced", kind=kind, connection_id=row.pk, provider=row.provider)
    return row


def _free_name(name: str) -> str:
    candidate, n = name, 1
    while Connection.objects.filter(name=candidate).exists():
        n += 1
        candidate = f"{name} {n}"
    return candidate
