"""The application's one error type: a refusal the user can act on.

Any app may raise it (it imports nothing of ours); the edges turn it into
what their client understands: a websocket ``error`` frame, a flash message,
a 404 or a 429. ``code`` is stable (clients and tests branch on it),
``message`` is for people.
"""

from __future__ import annotations


class AppError(Exception):
    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
