"""Whether a user may start a run now: the monthly quota, then the rate limits.

Every way to start a run (send, edit and resend, regenerate, continue,
retry, paint again) asks ``run_admit`` before its transaction, so a refusal
(``AppError``: ``quota_exceeded`` or ``rate_limited``) stores nothing and the
refusal's record for moderators is not rolled back with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts import usage
from accounts.models import User
from companionhub import ratelimits
from companionhub.errors import AppError


@dataclass(eq=False)
class RunAdmission:
    """Proof that a run the user starts passed the quota and the rate limits.

    Made only by ``run_admit`` and spent by one ``chat.runs.run_create``; an
    admission without a picture cannot make a run that paints one. A run
    counts once against the chat message limit, and against the picture
    limit when it paints.
    """

    user_id: int
    want_image: bool
    spent: bool = False


def run_admit(user: User, *, want_image: bool) -> RunAdmission:
    check_quota(user)
    _check_rate_limits(user, want_image=want_image)
    return RunAdmission(user_id=user.pk, want_image=bool(want_image))


def check_quota(user: User) -> None:
    """Refuse once the user's monthly token quota is used up (checked before the rate limits,
    so a refused message does not count against them)."""
    summary = usage.usage_quota_exceeded(user)
    if summary is not None:
        raise AppError(
            "quota_exceeded",
            f"You have used your {summary.quota:,} tokens for this month "
            f"({summary.tokens_this_period:,} so far). "
            f"The limit resets on {summary.resets_on.day} {summary.resets_on:%B %Y} (UTC).",
        )


def _check_rate_limits(user: User, *, want_image: bool) -> None:
    if want_image:
        _refuse_over_picture_limit(user)
    key = _limit_key(user)
    messages = ratelimits.hit("chat_message", key, record_label=user.username)
    if messages.limited:
        raise AppError(
            "rate_limited",
            f"You are sending messages faster than we allow. Wait {_wait(messages.retry_after)}.",
            retry_after=messages.retry_after,
        )
    if want_image:
        ratelimits.hit("image", key, record_label=user.username)


def picture_admit(user: User) -> None:
    """Count a picture the user asked for in words (the analysis found it) against the picture
    limit, as one asked for with ``image``; ``AppError('rate_limited')`` when over it."""
    _refuse_over_picture_limit(user)
    ratelimits.hit("image", _limit_key(user), record_label=user.username)


def change_admit(user: User) -> None:
    """A change that starts no run (a picture made the header or deleted, a chat branched)
    counts against the settings-change limit."""
    verdict = ratelimits.hit("settings_change", _limit_key(user), record_label=user.username)
    if verdict.limited:
        raise AppError(
            "rate_limited",
            f"Too many changes. Wait {_wait(verdict.retry_after)}.",
            retry_after=verdict.retry_after,
        )


def _refuse_over_picture_limit(user: User) -> None:
    key = _limit_key(user)
    pictures = ratelimits.peek("image", key)
    if pictures.limited:
        ratelimits.hit("image", key, record_label=user.username)  # recorded for moderators
        raise AppError(
            "rate_limited",
            "You have asked for many pictures. "
            f"Send without a picture, or wait {_wait(pictures.retry_after)}.",
            retry_after=pictures.retry_after,
        )


def _limit_key(user: User) -> str:
    return f"user:{user.pk}"


def _wait(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 90 else f"about {round(seconds / 60)} minutes"
