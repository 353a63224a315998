"""Personal API tokens: create, revoke, authenticate."""

from __future__ import annotations

import hashlib
import secrets

import structlog
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import ApiToken, User
from accounts.sockets import close_sockets

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "chk_"  # noqa: S105 - a public marker, not a secret
MAX_ACTIVE_TOKENS = 20


class TokenLimitReached(Exception):
    pass


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Return (row, secret). The secret exists only in this return value."""
    if active_token_count(user) >= MAX_ACTIVE_TOKENS:
        raise TokenLimitReached(
            _("You can have at most %(count)s active tokens; revoke one first.")
            % {"count": MAX_ACTIVE_TOKENS}
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:50], prefix=secret[:10], digest=digest(secret)
    )
    log.info("api_token_created", user_id=user.pk, token_id=token.pk)
    return token, secret


def token_revoke(*, user: User, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens and close the websockets it opened."""
    changed = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if changed:
        close_sockets(token_group(token_id))
        log.info("api_token_revoked", user_id=user.pk, token_id=token_id)
    return bool(changed)


def token_authenticate(secret: str) -> ApiToken | None:
    """The active token with this secret (its user active too), or None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is not None:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def token_group(token_id: int) -> str:
    return f"api-token.{token_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """Sockets opened with one browser session (the key itself never leaves the server)."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


def tokens_for_user(user: User) -> list[ApiToken]:
    """The user's tokens, active first, newest first."""
    return list(
        ApiToken.objects.filter(user=user)
        .only("id", "name", "prefix", "created_at", "last_used_at", "revoked_at")
        .order_by("revoked_at", "-created_at")[:50]
    )


def active_token_count(user: User) -> int:
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).count()


def revoke_all_tokens(*, user: User) -> int:
    """Revoke every active token of ``user`` and close the sockets they opened."""
    ids = list(ApiToken.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True))
    ApiToken.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=timezone.now())
    for token_id in ids:
        close_sockets(token_group(token_id))
    if ids:
        log.info("api_tokens_revoked", user_id=user.pk, token_ids=ids)
    return len(ids)
