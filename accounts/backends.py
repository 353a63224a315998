"""Log in with a username or an email address, in any letter case."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q
from django.http import HttpRequest


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: object,
    ):
        if username is None or password is None:
            return None
        identifier = username.strip().lower()
        User = get_user_model()
        lookup = Q(email__iexact=identifier) if "@" in identifier else Q(username=identifier)
        user = User._default_manager.filter(lookup).order_by("pk").first()
        if user is None:
            # Hash anyway so "no such account" takes as long as "wrong password".
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
