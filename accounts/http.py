"""The request a view behind ``login_required`` gets: its ``user`` is a signed-in ``User``.

For type checkers only (Django builds the request): ``HttpRequest.user`` may be
an ``AnonymousUser``, which the decorator has already turned away.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    user: User
