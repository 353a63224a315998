"""The language chat texts are written in for a user, where no request says it.

A page's language comes from the request (``LocaleMiddleware``); a websocket
frame and the events forwarded to it have no request, so the consumer
activates the user's language itself. Texts written in a worker (a failed
reply's message, stored and sent in English) are translated again where they
reach the user: ``translated``.
"""

from __future__ import annotations

from django.utils.translation import gettext


def translated(text: str) -> str:
    """``text`` in the active language when the catalogue has it (it was marked where it was
    written, in English), else as it is: a worker has no user's language active."""
    return gettext(text) if text else text
