"""Sign-in limits by account, and the known-browser cookie that keeps a lockout off the owner.

Two limits guard a password (``companionhub.ratelimits``):

- ``login``: every attempt, per client address + account.
- ``login_account``: failed passwords per account from any address, so
  guessing spread over many addresses is slowed too.

Both count the *account* the typed username or email names (resolved exactly
as the backend does), so a username and an email of one account share one
count instead of doubling it. A name with no account is counted under the
name itself: the same limits, the same answers, so nothing tells the two apart.

A per-account lock is also a way to lock someone out: anyone who knows a
username can spend its failures. So a browser that has signed in to the
account gets a signed cookie naming the account (a "known device", after
OWASP's device-cookie scheme); its attempts are counted on a budget of their
own (account + device). A stranger who spends the account's budget locks out
browsers the account has never used, not the owner's own. A stolen device
cookie buys a thief one more budget of the same size, not unlimited tries.

A password asked again of a signed-in user (new API token, new password) is
counted on the same budgets, so those forms are no cheaper a password oracle
than the sign-in page.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from accounts.backends import normalise_identifier, user_for_identifier
from accounts.models import User
from companionhub import ratelimits

DEVICE_COOKIE = "ch_device"
DEVICE_COOKIE_SALT = "accounts.signin.device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600


def account_key(user: User | None, identifier: str) -> str:
    """The counter key of the account an attempt names (or of the name itself when none)."""
    if user is not None:
        return f"user:{user.pk}"
    return f"name:{normalise_identifier(identifier)}"


def known_device(request: HttpRequest | None, user: User | None) -> str | None:
    """This browser's device id when its cookie was issued for ``user``, else None."""
    if request is None or user is None:
        return None
    value = request.get_signed_cookie(
        DEVICE_COOKIE, default=None, salt=DEVICE_COOKIE_SALT, max_age=DEVICE_COOKIE_MAX_AGE
    )
    user_id, _, device = (value or "").partition(":")
    return device if device and user_id == str(user.pk) else None


def lockout_key(request: HttpRequest | None, user: User | None, identifier: str = "") -> str:
    """The ``login_account`` key of this attempt: the account's, or the known browser's own."""
    key = account_key(user, identifier)
    device = known_device(request, user)
    return f"{key}|device:{device}" if device else key


def device_cookie_set(response: HttpResponse, *, request: HttpRequest, user: User) -> None:
    """Mark this browser as known to ``user`` (after a successful sign-in or registration)."""
    device = known_device(request, user) or secrets.token_urlsafe(12)
    response.set_signed_cookie(
        DEVICE_COOKIE,
        f"{user.pk}:{device}",
        salt=DEVICE_COOKIE_SALT,
        max_age=DEVICE_COOKIE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def login_attempt_check(*, request: HttpRequest | None, identifier: str) -> str:
    """Count a sign-in attempt; refuse it (``RateLimited``) over either limit.

    Returns the ``login_account`` key a failure is to be charged to.
    """
    user = user_for_identifier(identifier)
    key = account_key(user, identifier)
    ip = ratelimits.request_ip(request) if request is not None else "unknown"
    ratelimits.enforce("login", f"{ip}|{key}")
    lockout = lockout_key(request, user, identifier)
    ratelimits.refuse_if_limited("login_account", lockout)
    return lockout


def login_failure_count(lockout: str) -> None:
    ratelimits.hit("login_account", lockout)


def password_verify(*, request: HttpRequest | None, user: User, password: str) -> bool:
    """Check the password of a signed-in user, counted like a failed sign-in when wrong.

    Refuses (``RateLimited``) once the account's (or this browser's) failures
    have reached the limit, so a stolen session cannot guess the password here.
    """
    lockout = lockout_key(request, user)
    ratelimits.refuse_if_limited("login_account", lockout)
    if user.check_password(password):
        return True
    ratelimits.hit("login_account", lockout)
    return False
