"""Connections: the writes (save with its key, fetch the model list, probe) and the reads pages need.

The API key never leaves these rows in clear except into a client or an
``Authorization`` header: errors and log lines here name the connection and
the failure's type or HTTP status, never a header, a URL with its query, or a
response body (a server may echo the key back in an error).
"""

from __future__ import annotations

import time
from typing import Any

import requests
import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from chat.backend_models import CompanionBackend, Connection, SamplerPreset
from chat.backends import all_breakers, breaker_for, connections_changed, provider_for
from chat.backends.registry import BackendUnavailable
from companionhub.secretbox import SecretUnreadable

log = structlog.get_logger(__name__)

PROBE_TIMEOUT = (2.0, 3.0)  # a probe is a cheap GET: a slow answer is as bad as none
MAX_MODELS = 500  # names kept from a server's list (some list thousands)


class ConnectionProblem(Exception):
    """A connection could not be used for an admin or health request; the message is safe to show."""


# --- writes ------------------------------------------------------------------------


def connection_save(*, connection: Connection, api_key: str = "", clear_api_key: bool = False) -> Connection:
    """Save a connection from the admin. A blank ``api_key`` keeps the stored one."""
    if clear_api_key:
        connection.set_api_key("")
    elif api_key:
        connection.set_api_key(api_key.strip())
    with transaction.atomic():
        if connection.is_default:  # one default per kind: this one takes it
            Connection.objects.filter(kind=connection.kind, is_default=True).exclude(pk=connection.pk).update(
                is_default=False
            )
        connection.save()
    transaction.on_commit(connections_changed)
    log.info("connection_saved", connection_id=connection.pk, kind=connection.kind)
    return connection


def _get(connection: Connection, path: str) -> requests.Response:
    """GET ``{base_url}{path}`` with the connection's key; failures as ``ConnectionProblem``."""
    provider = provider_for(connection)
    url = provider.base_url(connection) + path
    headers = {"Accept": "application/json", "User-Agent": "CompanionHub"}
    try:
        key = connection.api_key
    except SecretUnreadable as exc:
        raise ConnectionProblem(str(exc)) from None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = requests.get(url, headers=headers, timeout=PROBE_TIMEOUT)
    except requests.RequestException as exc:
        # The exception's text holds the URL; its type says enough.
        raise ConnectionProblem(f"{type(exc).__name__} reaching the server") from None
    if response.status_code >= 400:
        raise ConnectionProblem(f"HTTP {response.status_code}")
    return response


def connection_fetch_models(*, connection: Connection) -> list[str]:
    """Ask the server for its model names (``GET {base_url}/models``) and keep them on the row."""
    if not provider_for(connection).lists_models:
        raise ConnectionProblem(f"{connection.provider} servers offer no model list")
    response = _get(connection, "/models")
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        raise ConnectionProblem("the server's model list is not JSON") from None
    if not isinstance(data, list):
        raise ConnectionProblem("the server's answer has no model list")
    names = sorted({str(m["id"])[:200] for m in data if isinstance(m, dict) and m.get("id")})[:MAX_MODELS]
    # update(): a fetched list is not a change of the connection (cached clients stay).
    Connection.objects.filter(pk=connection.pk).update(models_list=names, models_fetched_at=timezone.now())
    connection.models_list = names
    return names


def connection_probe(connection: Connection) -> dict[str, Any]:
    """One cheap request to the server, its outcome kept on the row for the admin."""
    provider = provider_for(connection)
    started = time.perf_counter()
    result: dict[str, Any] = {"kind": connection.kind, "provider": connection.provider}
    if provider.demo or provider.probe_path is None:
        result["ok"] = True
    else:
        try:
            _get(connection, provider.probe_path)
            result["ok"] = True
        except (ConnectionProblem, BackendUnavailable) as exc:
            result.update(ok=False, error=str(exc)[:200])
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    result["circuit"] = breaker_for(connection, connection.kind).status().state
    Connection.objects.filter(pk=connection.pk).update(
        last_probe_ok=result["ok"], last_probe_at=timezone.now(), last_probe_error=result.get("error", "")
    )
    return result


def probe_connections() -> dict[str, dict[str, Any]]:
    """Each enabled connection's probe, from the cache when one is at most ``HEALTHZ_PROBE_SECONDS`` old.

    Registered with ``companionhub.health`` (chat/apps.py): /healthz never
    sends more than one probe per connection per period, however often it is asked.
    """
    results = {}
    for connection in Connection.objects.filter(enabled=True):
        key = f"healthz:connection:{connection.pk}:{connection.updated_at.timestamp()}"
        result = cache.get(key)
        if result is None:
            result = connection_probe(connection)
            cache.set(key, result, timeout=max(int(settings.HEALTHZ_PROBE_SECONDS), 1))
        results[connection.name] = result
    return results


def breakers_reset_all() -> int:
    """Close every connection's breaker (and the demo ones); return how many."""
    breakers = all_breakers()
    for breaker in breakers:
        breaker.reset()
    return len(breakers)


def companion_backend_set(
    *,
    companion_id: int,
    llm_connection: Connection | None,
    model: str,
    preset: SamplerPreset | None,
    image_connection: Connection | None,
) -> CompanionBackend:
    """Record a companion's choice; blank fields mean "the defaults"."""
    choice, _ = CompanionBackend.objects.update_or_create(
        companion_id=companion_id,
        defaults={
            "llm_connection": llm_connection,
            "model": model.strip()[:200] if llm_connection is not None else "",
            "preset": preset,
            "image_connection": image_connection,
        },
    )
    return choice


# --- reads -------------------------------------------------------------------------


def connections_for_choice(kind: str) -> QuerySet[Connection]:
    """What a user may pick for a companion: the enabled connections of a kind (no keys leave)."""
    return Connection.objects.filter(kind=kind, enabled=True).only(
        "id", "name", "kind", "provider", "default_model", "models_list", "updated_at"
    )


def presets_for_user(user: User) -> QuerySet[SamplerPreset]:
    """The shared presets and the user's own."""
    return SamplerPreset.objects.filter(Q(owner__isnull=True) | Q(owner=user))


def companion_backend_of(companion_id: int) -> CompanionBackend | None:
    return CompanionBackend.objects.filter(companion_id=companion_id).first()


def connection_health(connection: Connection) -> str:
    """The admin's health column: the last probe's outcome."""
    if connection.last_probe_ok is None:
        return "not probed yet"
    if connection.last_probe_ok:
        return "ok"
    return f"failing: {connection.last_probe_error}"
