"""Rate limits: one table of scopes (settings.RATE_LIMITS), one function to check them.

| scope            | keyed by                                   |
|------------------|--------------------------------------------|
| login            | client IP + the account tried              |
| login_account    | failures per account, from any IP; a known |
|                  | browser (device cookie) has its own count  |
| register         | client IP                                  |
| chat_message     | user (websocket and HTTP alike)            |
| image            | user                                       |
| companion_create | user                                       |
| settings_change  | user                                       |
| token_create     | user                                       |
| account_export   | user                                       |
| memory_change    | user (add, edit, pin, delete a memory)     |
| lorebook_change  | user (create, import, edit, delete a book or an entry) |
| transcribe       | user (push-to-talk recordings, POST only)  |

Counting uses django-ratelimit's fixed windows on the shared cache (Redis in
production), so a burst across a window boundary can let up to twice the
limit through; the limits are set with that in mind. Every refusal is
recorded (``accounts.RateLimitRecord``) so moderators can see who is limited
and lift a limit early: this module imports no app, so the accounts app
registers the function that records (``register_recorder``, accounts/apps.py).

When the cache is down the sign-in scopes refuse (a blind limiter must not
become an open door for password guessing); the others allow, because the
rest of the site needs the same Redis and reports that failure itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import ngettext
from django_ratelimit.core import _get_window, _make_cache_key, _split_rate, get_usage

from companionhub import metrics

log = structlog.get_logger(__name__)

FAIL_CLOSED = frozenset({"login", "login_account", "register"})


class Recorder(Protocol):
    """Records one refusal of (scope, key) for moderators; ``label`` names the key to a person."""

    def __call__(self, *, scope: str, key: str, label: str, count: int, retry_after: int) -> object: ...


_recorder: Recorder | None = None


def register_recorder(recorder: Recorder) -> None:
    """Set the function that records refusals; until one is set, refusals are only logged."""
    global _recorder
    _recorder = recorder


class RateLimited(PermissionDenied):
    """Raised by views; the middleware answers 429 with Retry-After."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"rate limited: {scope}")
        self.scope = scope
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Verdict:
    limited: bool
    retry_after: int = 0
    count: int = 0
    limit: int = 0


def client_ip(*, remote_addr: str | None, forwarded_for: str | None) -> str:
    """REMOTE_ADDR, or the X-Forwarded-For entry ``TRUSTED_PROXY_HOPS`` from the right.

    Each trusted proxy appends the address it saw, so only the last ``hops``
    entries were written by machines we trust; anything left of them is
    whatever the client claimed and is ignored.
    """
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0 and forwarded_for:
        entries = [e.strip() for e in forwarded_for.split(",") if e.strip()]
        if len(entries) >= hops:
            return entries[-hops]
    return remote_addr or "unknown"


def request_ip(request: HttpRequest) -> str:
    """The client address of a request: rate-limit keys and the request log use this one."""
    return client_ip(
        remote_addr=request.META.get("REMOTE_ADDR"), forwarded_for=request.META.get("HTTP_X_FORWARDED_FOR")
    )


def scope_ip(scope: Mapping[str, Any]) -> str:
    """The client address of an ASGI scope (a websocket), by the same rule as ``request_ip``.

    Repeated X-Forwarded-For headers are joined in order, as Django joins them
    into ``META`` for a request.
    """
    client = scope.get("client")
    headers = scope.get("headers") or ()
    forwarded = [value.decode("latin-1") for name, value in headers if name.lower() == b"x-forwarded-for"]
    return client_ip(remote_addr=client[0] if client else None, forwarded_for=",".join(forwarded) or None)


def _identity(value: str) -> str:
    """Keys never hold raw usernames or addresses in the cache: a short hash."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _rate(scope: str) -> str:
    return settings.RATE_LIMITS[scope]


def hit(scope: str, key: str, *, record_label: str = "") -> Verdict:
    """Count one attempt for (scope, key); say whether it is over the limit."""
    rate = _rate(scope)
    try:
        usage = get_usage(None, group=scope, key=lambda *_: _identity(key), rate=rate, increment=True)
    except Exception as exc:  # the cache is down
        log.warning("ratelimit_cache_error", scope=scope, error=type(exc).__name__)
        if scope in FAIL_CLOSED:
            return Verdict(True, retry_after=60)
        return Verdict(False)
    if usage is None:  # RATELIMIT_ENABLE is off
        return Verdict(False)
    verdict = Verdict(
        limited=usage["should_limit"],
        retry_after=max(1, int(usage["time_left"])),
        count=usage["count"],
        limit=usage["limit"],
    )
    if verdict.limited:
        _record(scope, key, record_label or key, verdict)
        metrics.count_rate_limit_hit(scope)
    return verdict


def peek(scope: str, key: str) -> Verdict:
    """Is (scope, key) over its limit right now? Counts nothing."""
    try:
        usage = get_usage(
            None, group=scope, key=lambda *_: _identity(key), rate=_rate(scope), increment=False
        )
    except Exception:
        return Verdict(scope in FAIL_CLOSED, retry_after=60)
    if usage is None:
        return Verdict(False)
    return Verdict(
        limited=usage["count"] >= usage["limit"],
        retry_after=max(1, int(usage["time_left"])),
        count=usage["count"],
        limit=usage["limit"],
    )


def cache_key(scope: str, key: str) -> str:
    """The cache key django-ratelimit uses for (scope, key) in the current window."""
    rate = _rate(scope)
    _, period = _split_rate(rate)
    value = _identity(key)
    return _make_cache_key(scope, _get_window(value, period), rate, value, None)


def clear(scope: str, key: str) -> None:
    """Lift the limit on (scope, key) for the current window."""
    caches[settings.RATELIMIT_USE_CACHE].delete(cache_key(scope, key))


def _record(scope: str, key: str, label: str, verdict: Verdict) -> None:
    if _recorder is not None:
        try:
            _recorder(scope=scope, key=key, label=label, count=verdict.count, retry_after=verdict.retry_after)
        except Exception:  # recording is for moderators; never turn a 429 into a 500
            log.exception("ratelimit_record_failed", scope=scope)
    log.info(
        "rate_limited", scope=scope, count=verdict.count, limit=verdict.limit, retry_after=verdict.retry_after
    )


def refuse_if_limited(scope: str, key: str, *, record_label: str = "") -> None:
    """Raise ``RateLimited`` when (scope, key) has already reached its limit; count nothing.

    For limits that count failures only (``login_account``): the attempt is
    refused before it is tried, and the refusal is recorded like any other,
    so moderators see the lockout and can lift it.
    """
    verdict = peek(scope, key)
    if not verdict.limited:
        return
    if verdict.limit:  # the cache answered (a dead cache refuses without a count to record)
        _record(scope, key, record_label or key, verdict)
        metrics.count_rate_limit_hit(scope)
    raise RateLimited(scope, verdict.retry_after)


def enforce(scope: str, key: str, *, record_label: str = "") -> None:
    """``hit`` for views: raise ``RateLimited`` when over the limit."""
    verdict = hit(scope, key, record_label=record_label)
    if verdict.limited:
        raise RateLimited(scope, verdict.retry_after)


def rate_limited_response(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    minutes = max(1, round(exc.retry_after / 60))
    message = ngettext(
        "Too many attempts. Try again in about %(minutes)s minute.",
        "Too many attempts. Try again in about %(minutes)s minutes.",
        minutes,
    ) % {"minutes": minutes}
    accepts_json = "application/json" in request.headers.get("Accept", "")
    response: HttpResponse
    if accepts_json:
        response = JsonResponse(
            {"error": "rate_limited", "message": message, "retry_after": exc.retry_after}, status=429
        )
    else:
        response = render(
            request, "429.html", {"message": message, "retry_after": exc.retry_after}, status=429
        )
    response["Retry-After"] = str(exc.retry_after)
    return response


class RateLimitMiddleware:
    """Turn ``RateLimited`` into a 429 page (or JSON) with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RateLimited):
            return rate_limited_response(request, exception)
        return None
