"""Writes to accounts, in one place."""

from __future__ import annotations

import structlog
from django.contrib.auth import login
from django.http import HttpRequest

from accounts.forms import ProfileForm, RegistrationForm
from accounts.models import User

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
