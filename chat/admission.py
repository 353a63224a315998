"""Whether a user may start a run now: the monthly quota, then the rate limits.

Every way to start a run (send, edit and resend, regenerate, continue,
retry, paint again) asks ``run_admit`` before its transaction, so a refusal
(``AppError``: ``quota_exceeded`` or ``rate_limited``) stores nothing and the
refusal's record for moderators is not rolled back with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

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
            _(
                "You have used your %(quota)s tokens for this month (%(used)s so far). "
                "The limit resets on %(date)s (UTC)."
            )
            % {
                "quota": number_format(summary.quota, force_grouping=True),
                "used": number_format(summary.tokens_this_period, force_grouping=True),
                "date": date_format(summary.resets_on, "DATE_FORMAT"),
            },
        )


def _check_rate_limits(user: User, *, want_image: bool) -> None:
    if want_image:
        _refuse_over_picture_limit(user)
    key = _limit_key(user)
    messages = ratelimits.hit("chat_message", key, record_label=user.username)
    if messages.limited:
        raise AppError(
            "rate_limited",
            _("You are sending messages faster than we allow. Wait %(wait)s.")
            % {"wait": _wait(messages.retry_after)},
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
            _("Too many changes. Wait %(wait)s.") % {"wait": _wait(verdict.retry_after)},
            retry_after=verdict.retry_after,
        )


def _refuse_over_picture_limit(user: User) -> None:
    key = _limit_key(user)
    pictures = ratelimits.peek("image", key)
    if pictures.limited:
        ratelimits.hit("image", key, record_label=user.username)  # recorded for moderators
        raise AppError(
            "rate_limited",
            _("You have asked for many pictures. Send without a picture, or wait %(wait)s.")
            % {"wait": _wait(pictures.retry_after)},
            retry_after=pictures.retry_after,
        )


def _limit_key(user: User) -> str:
    return f"user:{user.pk}"


def _wait(seconds: int) -> str:
    if seconds < 90:
        return ngettext("%(count)s second", "%(count)s seconds", seconds) % {"count": seconds}
    minutes = round(seconds / 60)
    return ngettext("about %(count)s minute", "about %(count)s minutes", minutes) % {"count": minutes}
