"""Log in with a username or an email address, in any letter case."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q
from django.http import HttpRequest

from accounts.models import User


def normalise_identifier(value: str | None) -> str:
    """What was typed in "username or email", as the lookup and the sign-in limits see it."""
    return " ".join((value or "").split()).lower()[:254]


def user_for_identifier(identifier: str) -> User | None:
    """The account a typed username or email names, or None.

    The one lookup behind both signing in and the per-account limit, so the
    limit counts exactly the account an attempt would open.
    """
    identifier = normalise_identifier(identifier)
    if not identifier:
        return None
    lookup = Q(email__iexact=identifier) if "@" in identifier else Q(username=identifier)
    return get_user_model()._default_manager.filter(lookup).order_by("pk").first()


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: object,
    ) -> User | None:
        if username is None or password is None:
            return None
        user = user_for_identifier(username)
        if user is None:
            # Hash anyway so "no such account" takes as long as "wrong password".
            get_user_model()().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
