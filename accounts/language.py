"""Which language a user sees: their saved choice, else the browser's.

The order for a page is: a signed-in user's ``User.language``, then the
language cookie the switcher sets, then the browser's ``Accept-Language``
(Django's ``LocaleMiddleware`` does the last two). Websocket consumers and
Celery tasks have no request: they call ``user_language(user)`` (a socket
passes what its handshake said, ``scope_language``, as the fallback) and wrap
the texts they send in ``translation.override(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import get_supported_language_variant

# The parser LocaleMiddleware itself uses (weights, ordering, malformed entries dropped).
from django.utils.translation.trans_real import parse_accept_lang_header

from accounts.models import User


def supported(code: str | None) -> bool:
    """Is ``code`` one of the site's languages (not merely one Django has a catalogue for)?"""
    return bool(code) and code in dict(settings.LANGUAGES)


def scope_language(scope: Mapping[str, Any]) -> str | None:
    """What a websocket's handshake says of the visitor's language, as a page request would:
    the language cookie, else the best ``Accept-Language`` entry the site offers."""
    cookie = (scope.get("cookies") or {}).get(settings.LANGUAGE_COOKIE_NAME)
    if supported(cookie):
        return cookie
    for name, value in scope.get("headers") or ():
        if name.lower() == b"accept-language":
            for code, _quality in parse_accept_lang_header(value.decode("latin-1")):
                try:
                    variant = get_supported_language_variant(code)
                except LookupError:
                    continue
                if supported(variant):
                    return variant
    return None


def user_language(user: User | None, *, fallback: str | None = None) -> str:
    """The language to speak to ``user`` in: their saved one, else ``fallback``, else the site's."""
    saved = getattr(user, "language", "") if user is not None else ""
    if supported(saved):
        return saved
    if fallback and supported(fallback):
        return fallback
    return settings.LANGUAGE_CODE


def language_reset(**kwargs: object) -> None:
    """After each request (``request_finished``): back to the site's language.

    LocaleMiddleware activates a language per request and never resets it, so a
    thread would keep the last visitor's for whatever it runs next without a
    request (a socket's frames, a task, a test's direct call).
    """
    translation.deactivate()


def cookie_set(response: HttpResponse, code: str) -> None:
    """Remember ``code`` in this browser, with the cookie Django's ``set_language`` sets."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        code,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,  # type: ignore[arg-type]  # "Lax" (settings)
    )


class UserLanguageMiddleware:
    """Activate a signed-in user's saved language for the request (after LocaleMiddleware chose one).

    Users who saved none keep what LocaleMiddleware found (cookie, then browser).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and supported(getattr(user, "language", "")):
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        return self.get_response(request)
