"""Writes to accounts, in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

import structlog
from django.conf import settings
from django.contrib.auth import login
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.forms import ProfileForm, RegistrationForm
from accounts.models import RateLimitRecord, User
from accounts.sockets import close_sockets
from accounts.tokens import active_token_count, revoke_all_tokens, session_group, user_group
from companionhub import ratelimits

log = structlog.get_logger(__name__)


def user_register(*, request: HttpRequest, form: RegistrationForm) -> User:
    """Create the account from a valid form and sign the new user in."""
    user = form.save()
    login(request, user, backend="accounts.backends.UsernameOrEmailBackend")
    log.info("user_registered", user_id=user.pk)
    return user


def user_update_profile(*, form: ProfileForm) -> User:
    user = form.save()
    log.info("user_profile_updated", user_id=user.pk, fields=sorted(form.changed_data))
    return user


def user_set_language(*, user: User, language: str) -> None:
    """Save the language ``user`` chose ("" follows the browser); unknown codes are refused."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(f"unsupported language {language!r}")
    User.objects.filter(pk=user.pk).update(language=language)
    user.language = language
    log.info("user_language_set", user_id=user.pk, language=language or "browser")


def rate_limit_record(*, scope: str, key: str, label: str, count: int, retry_after: int) -> RateLimitRecord:
    """Note that (scope, key) was refused; one row per window, its count kept current."""
    reset_at = (timezone.now() + timedelta(seconds=retry_after)).replace(microsecond=0)
    record = (
        RateLimitRecord.objects.filter(scope=scope, key=key[:300], reset_at__gt=timezone.now())
        .order_by("-reset_at")
        .first()
    )
    if record is None:
        return RateLimitRecord.objects.create(scope=scope, key=key[:300], hits=count, reset_at=reset_at)
    RateLimitRecord.objects.filter(pk=record.pk).update(hits=count, last_limited_at=timezone.now())
    return record


def rate_limit_clear(*, record: RateLimitRecord) -> None:
    """Lift the limit now (the cache counter goes) and drop the record."""
    ratelimits.clear(record.scope, record.key)
    log.info("rate_limit_cleared", scope=record.scope, record_id=record.pk)
    record.delete()


def rate_limits_delete_expired() -> int:
    deleted, _ = RateLimitRecord.objects.filter(reset_at__lte=timezone.now()).delete()
    return deleted


def user_deactivate(*, user: User) -> None:
    """Deactivate an account: end its sessions, revoke its tokens, close its open websockets."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    revoke_all_tokens(user=user)
    ended = _end_sessions(user.pk)
    close_sockets(user_group(user.pk))
    log.info("user_deactivated", user_id=user.pk, sessions_ended=ended)


def user_delete(*, user: User) -> None:
    """Delete an account and everything it owns, at once and for good.

    One transaction: the user row goes and the foreign keys cascade to every
    row of the user (companions, conversations, messages, runs, pictures,
    tokens, usage, exports); the receivers of those rows remove their files
    once the transaction commits, and a rollback keeps them. Its sessions end
    in the same transaction (they hold no foreign key), and its open sockets
    (browser and API token alike) are told to close after the commit, since
    Channels checks a session only when a socket connects. Rate-limit records
    keyed by the account go too; the counters expire by themselves.
    """
    user_id = user.pk
    with transaction.atomic():
        ended = _end_sessions(user_id)
        RateLimitRecord.objects.filter(_rate_limit_keys_of(user_id)).delete()
        user.delete()
        transaction.on_commit(lambda: close_sockets(user_group(user_id)))
    log.info("user_deleted", user_id=user_id, sessions_ended=ended)


def _end_sessions(user_id: int) -> int:
    """Delete the live sessions signed in as ``user_id``; return how many."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            session.delete()
            ended += 1
    return ended


def _rate_limit_keys_of(user_id: int) -> Q:
    """Records whose key names the account (``accounts.signin``: ``user:<id>``, alone, after an
    address, or before a browser's device id)."""
    key = f"user:{user_id}"
    return Q(key=key) | Q(key__startswith=f"{key}|") | Q(key__endswith=f"|{key}")


def close_session_sockets(
    sender: object = None, request: HttpRequest | None = None, user: User | None = None, **kwargs: object
) -> None:
    """``user_logged_out`` receiver: close the websockets opened with the ending session."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        close_sockets(session_group(session_key))


class PasswordChangeOutcome(NamedTuple):
    tokens_revoked: int
    tokens_kept: int


def user_password_changed(*, user: User, keep_api_tokens: bool = False) -> PasswordChangeOutcome:
    """End what the old password opened: other sessions' sockets, and API tokens unless kept.

    Other sessions end by themselves (their password hash no longer matches),
    but Channels checks a session only at connect, so open sockets are told to
    close. Tokens are revoked by default: a password is changed when someone
    else may have got in, and a token that someone made would outlive the old
    password. Revoking closes the sockets the tokens opened.
    """
    revoked = 0 if keep_api_tokens else revoke_all_tokens(user=user)
    kept = active_token_count(user) if keep_api_tokens else 0
    # Every socket of the user, a kept token's too: the consumer cannot tell
    # session sockets from token sockets by group, and a kept token reconnects.
    close_sockets(user_group(user.pk))
    log.info("user_password_changed", user_id=user.pk, tokens_revoked=revoked, tokens_kept=kept)
    return PasswordChangeOutcome(tokens_revoked=revoked, tokens_kept=kept)
