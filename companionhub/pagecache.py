"""Caching of the pages many people load, with invalidation on write.

Two kinds of entry, both in Django's default cache (Redis when ``REDIS_URL``
is set, locmem otherwise):

* the **landing page** for anonymous visitors: the rendered HTML, shared by
  everyone, ``CACHE_LANDING_SECONDS`` (5 min). Only the body is kept: the
  view runs inside the middleware, so headers, cookies and the CSP header
  are made fresh for every request. One entry per language (the visitor's,
  from the language cookie or Accept-Language). The header's language form
  needs a CSRF token: its value is stored as a slot and each request gets
  its own token in it. A render that used a CSRF token anywhere else or a
  CSP nonce, or a request with flash messages waiting, is never stored nor
  served from the cache; signed-in users always get a fresh render.
* **per-user data** of the companion list and the gallery (never HTML, so
  tokens, nonces and messages cannot be in it), ``CACHE_USER_PAGES_SECONDS``
  (1 min). Keys hold the user's id and a per-user *version*; every service
  that changes what those pages show calls ``user_pages_changed``, which
  bumps the version at once and again when the transaction commits, so the
  next load misses. The second bump is the one that matters: a read racing
  the write, before the commit, can store the old data only under a version
  that the commit moves past.

Hits and misses are counted in the cache itself with ``incr``, so every
process adds to the same numbers; ``stats()`` reports them (``/healthz`` and
``/metrics``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.middleware.csrf import get_token
from django.utils import translation

log = structlog.get_logger(__name__)

PREFIX = "pagecache"
PAGES = ("landing", "companion_list", "gallery")
# Versions and counters must outlive the entries they describe.
META_TIMEOUT = None


def _generation() -> int:
    """A namespace for every entry: ``invalidate_all`` moves it on."""
    value = cache.get(f"{PREFIX}:generation")
    if value is None:
        cache.add(f"{PREFIX}:generation", 1, timeout=META_TIMEOUT)
        value = cache.get(f"{PREFIX}:generation") or 1
    return int(value)


def invalidate_all() -> None:
    """Forget every cached page at once (after a deploy that changes templates; tests)."""
    _incr(f"{PREFIX}:generation", initial=1)


def _incr(key: str, *, initial: int = 0) -> int:
    cache.add(key, initial, timeout=META_TIMEOUT)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, initial + 1, timeout=META_TIMEOUT)
        return initial + 1


def _user_version(user_id: int) -> int:
    return int(cache.get(f"{PREFIX}:user:{user_id}:version") or 0)


def user_pages_changed(user_id: int) -> None:
    """What ``user_id``'s companion list or gallery shows has changed: bump now and on commit."""

    def bump() -> None:
        try:
            _incr(f"{PREFIX}:user:{user_id}:version")
        except Exception as exc:  # cache down: entries expire within a minute anyway
            log.warning("pagecache_bump_failed", user_id=user_id, error=type(exc).__name__)

    bump()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(bump)


def _count(page: str, outcome: str) -> None:
    try:
        _incr(f"{PREFIX}:stats:{page}:{outcome}")
        cache.add(f"{PREFIX}:stats:since", time.time(), timeout=META_TIMEOUT)
    except Exception as exc:  # counting must never break a page
        log.debug("pagecache_count_failed", page=page, error=type(exc).__name__)


def user_data[T](page: str, user_id: int, part: str, build: Callable[[], T]) -> T:
    """``build()``'s result for this user, from the cache while the user's version holds."""
    if not settings.CACHE_PAGES:
        return build()
    try:
        versions = cache.get_many([f"{PREFIX}:generation", f"{PREFIX}:user:{user_id}:version"])
        generation = versions.get(f"{PREFIX}:generation") or _generation()
        version = int(versions.get(f"{PREFIX}:user:{user_id}:version") or 0)
        key = f"{PREFIX}:{generation}:{page}:user:{user_id}:v{version}:{part}"
        value = cache.get(key)
    except Exception as exc:  # a page still renders without its cache
        log.warning("pagecache_read_failed", page=page, error=type(exc).__name__)
        return build()
    if value is not None:
        _count(page, "hits")
        return value
    _count(page, "misses")
    value = build()
    try:
        cache.set(key, value, timeout=settings.CACHE_USER_PAGES_SECONDS)
    except Exception as exc:
        log.warning("pagecache_write_failed", page=page, error=type(exc).__name__)
    return value


def _landing_key() -> str:
    return f"{PREFIX}:{_generation()}:landing:anonymous:{translation.get_language()}"


# The hidden field the {% csrf_token %} tag writes; its value is per visitor.
_CSRF_FIELD = re.compile(rb'(<input type="hidden" name="csrfmiddlewaretoken" value=")([^"]*)(")')
_CSRF_SLOT = b"\x00csrf-slot\x00"


def _with_csrf_slots(body: bytes) -> bytes | None:
    """``body`` with every CSRF form field's value made a slot; None if a token is used elsewhere."""
    tokens = {match.group(2) for match in _CSRF_FIELD.finditer(body)}
    if not tokens:
        return None
    slotted = _CSRF_FIELD.sub(lambda m: m.group(1) + _CSRF_SLOT + m.group(3), body)
    if any(token in slotted for token in tokens):
        return None
    return slotted


def _fill_csrf_slots(request, body: bytes) -> bytes:
    if _CSRF_SLOT not in body:
        return body
    return body.replace(_CSRF_SLOT, get_token(request).encode())  # sets this visitor's cookie too


def _request_is_shareable(request) -> bool:
    """Anonymous, plain GET, and no flash message waiting to be shown."""
    from django.contrib.messages import get_messages

    if request.user.is_authenticated or request.GET:
        return False
    return len(get_messages(request)) == 0  # len() does not mark them shown


def _shareable_body(request, response) -> bytes | None:
    """The body to share, or None when something in it belongs to this request.

    A CSP nonce or a CSRF token outside a form field makes it private; the
    form fields' tokens become slots (``_fill_csrf_slots``).
    """
    nonce = getattr(request, "_csp_nonce", None)
    if response.status_code != 200 or response.cookies or nonce:
        return None
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return _with_csrf_slots(response.content)
    return response.content


def anonymous_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Cache ``view``'s body for anonymous visitors (the landing page)."""
    from functools import wraps

    from django.http import HttpResponse

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.CACHE_PAGES or not _request_is_shareable(request):
            return view(request, *args, **kwargs)
        try:
            key = _landing_key()
            cached = cache.get(key)
        except Exception as exc:
            log.warning("pagecache_read_failed", page="landing", error=type(exc).__name__)
            return view(request, *args, **kwargs)
        if cached is not None:
            _count("landing", "hits")
            body, content_type = cached
            return HttpResponse(_fill_csrf_slots(request, body), content_type=content_type)
        _count("landing", "misses")
        response = view(request, *args, **kwargs)
        body = _shareable_body(request, response)
        if body is not None:
            try:
                cache.set(key, (body, response["Content-Type"]), timeout=settings.CACHE_LANDING_SECONDS)
            except Exception as exc:
                log.warning("pagecache_write_failed", page="landing", error=type(exc).__name__)
        return response

    return wrapper


def reset_stats() -> None:
    """Start the hit and miss counters again from zero."""
    keys = [f"{PREFIX}:stats:{page}:{outcome}" for page in PAGES for outcome in ("hits", "misses")]
    cache.delete_many([*keys, f"{PREFIX}:stats:since"])


def stats() -> dict[str, Any]:
    """Hits, misses and hit ratio per page and in total, since the counters started."""
    keys = [f"{PREFIX}:stats:{page}:{outcome}" for page in PAGES for outcome in ("hits", "misses")]
    values = cache.get_many([*keys, f"{PREFIX}:stats:since"])
    pages: dict[str, dict[str, Any]] = {}
    total_hits = total_misses = 0
    for page in PAGES:
        hits = int(values.get(f"{PREFIX}:stats:{page}:hits") or 0)
        misses = int(values.get(f"{PREFIX}:stats:{page}:misses") or 0)
        pages[page] = {"hits": hits, "misses": misses, "ratio": _ratio(hits, misses)}
        total_hits += hits
        total_misses += misses
    since = values.get(f"{PREFIX}:stats:since")
    return {
        "hits": total_hits,
        "misses": total_misses,
        "ratio": _ratio(total_hits, total_misses),
        "since": round(float(since), 3) if since is not None else None,
        "pages": pages,
    }


def _ratio(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None
