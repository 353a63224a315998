"""Token usage: charging finished runs, monthly periods, quotas, and the reads the profile shows.

Writes (``usage_record_run``) run inside the caller's transaction, the one
that moves a run to its final status, so a run's cost and its status commit
together or not at all. A run is charged at most once: the guarded status
update in ``chat.services`` turns a repeated completion into a no-op, and the
unique ``run`` on ``UsageTransaction`` refuses a second row whatever path
tries to add one. Work done for a run after it was charged (the memory work
after a reply) is a row of its own without a run (``usage_record_extra``).

Periods are calendar months in UTC. A ``UserUsage`` row from an earlier month
rolls over lazily, in the same UPDATE that adds tokens (or a guarded UPDATE
on read), so concurrent writers never lose or double a count and no scheduled
job is needed.

Quotas are soft by design: the check happens before a run starts, and a run
that starts under the limit is charged in full even if it crosses it (its
tokens are spent upstream by then).

A companion keeps its own running total of tokens. accounts imports no other
app, so the companions app registers how to add to it
(``register_companion_tokens``, companions/apps.py); a charge calls it in
the same transaction as the ledger row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Protocol

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import UsageTransaction, User, UserUsage
from companionhub import metrics

log = structlog.get_logger(__name__)


class CompanionTokens(Protocol):
    """Adds ``tokens`` to the companion's own total."""

    def __call__(self, *, companion_id: int, tokens: int) -> object: ...


_companion_tokens: CompanionTokens | None = None


def register_companion_tokens(function: CompanionTokens) -> None:
    global _companion_tokens
    _companion_tokens = function


def month_start(now: dt.datetime | None = None) -> dt.date:
    """The first day (UTC) of the month ``now`` falls in."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    return now.date().replace(day=1)


def next_month_start(now: dt.datetime | None = None) -> dt.date:
    start = month_start(now)
    return (start + dt.timedelta(days=32)).replace(day=1)


def _usage_row(user_id: int, *, now: dt.datetime) -> UserUsage:
    # get_or_create retries the read when a concurrent insert wins (unique user).
    usage, _ = UserUsage.objects.get_or_create(user_id=user_id, defaults={"period_start": month_start(now)})
    return usage


# --- writes ---------------------------------------------------------------------


def usage_record_run(
    *,
    run_id: uuid.UUID | None,
    user_id: int,
    companion_id: int | None,
    companion_name: str,
    status: str,
    prompt_tokens: int,
    completion_tokens: int,
    image_count: int,
    served_by: str = "",
    now: dt.datetime | None = None,
) -> UsageTransaction | None:
    """Charge one run: its transaction row, the user's counters and the companion's total.

    Call inside the transaction that ends the run. Returns None when the run
    was already charged (a retry or a duplicate delivery).
    """
    now = now or timezone.now()
    tokens = max(int(prompt_tokens), 0) + max(int(completion_tokens), 0)
    images = max(int(image_count), 0)
    with transaction.atomic():
        usage = _usage_row(user_id, now=now)
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not break the caller's transaction
                charged = UsageTransaction.objects.create(
                    user_id=user_id,
                    companion_id=companion_id,
                    companion_name=companion_name[:50],
                    run_id=run_id,
                    run_status=status[:10],
                    prompt_tokens=max(int(prompt_tokens), 0),
                    completion_tokens=max(int(completion_tokens), 0),
                    image_count=images,
                    served_by=served_by[:200],  # the connection and model, per connection accounting
                    created_at=now,
                )
        except IntegrityError:
            log.warning("usage_already_charged", run_id=str(run_id))
            return None
        period = month_start(now)
        new_period = {"period_start__lt": period}
        # One UPDATE: roll over (if this row is from an earlier month) and add, atomically.
        UserUsage.objects.filter(pk=usage.pk).update(
            tokens_this_period=Case(
                When(**new_period, then=Value(tokens)), default=F("tokens_this_period") + tokens
            ),
            images_this_period=Case(
                When(**new_period, then=Value(images)), default=F("images_this_period") + images
            ),
            period_start=Case(When(**new_period, then=Value(period)), default=F("period_start")),
            lifetime_tokens=F("lifetime_tokens") + tokens,
            lifetime_images=F("lifetime_images") + images,
        )
        if companion_id is not None and tokens and _companion_tokens is not None:
            _companion_tokens(companion_id=companion_id, tokens=tokens)
    return charged


def usage_record_extra(
    *,
    user_id: int,
    companion_id: int | None,
    companion_name: str,
    kind: str,
    prompt_tokens: int,
    completion_tokens: int,
    served_by: str = "",
    now: dt.datetime | None = None,
) -> UsageTransaction | None:
    """Charge LLM work done for a run after it was charged: the memory work that follows a
    finished reply (``kind``: "summary", "memory"). A ledger row of its own, with no run (the
    run's row stays as it was charged), added to the user's counters and the companion's total
    like a run's. Nothing spent, nothing written: returns None."""
    if max(int(prompt_tokens), 0) + max(int(completion_tokens), 0) == 0:
        return None
    return usage_record_run(
        run_id=None,
        user_id=user_id,
        companion_id=companion_id,
        companion_name=companion_name,
        status=kind,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        image_count=0,
        served_by=served_by,
        now=now,
    )


def usage_record_speech(
    *,
    user_id: int,
    companion_id: int | None,
    companion_name: str,
    characters: int,
    served_by: str = "",
    now: dt.datetime | None = None,
) -> UsageTransaction | None:
    """Charge one spoken clip: a ledger row of kind "voice" with the characters synthesised
    (``speech_chars``; speech services bill by character, not by token). It adds no tokens,
    so the monthly token quota is not spent on speech: the ``voice`` rate limit bounds it.
    Nothing synthesised, nothing written: returns None."""
    characters = max(int(characters), 0)
    if characters == 0:
        return None
    return UsageTransaction.objects.create(
        user_id=user_id,
        companion_id=companion_id,
        companion_name=companion_name[:50],
        run_status="voice",
        speech_chars=characters,
        served_by=served_by[:200],
        created_at=now or timezone.now(),
    )


def usage_speech_chars(user: User, *, now: dt.datetime | None = None) -> int:
    """Characters synthesised for ``user`` this month (UTC)."""
    start = dt.datetime.combine(month_start(now), dt.time(), tzinfo=dt.UTC)
    total = UsageTransaction.objects.filter(user=user, created_at__gte=start).aggregate(n=Sum("speech_chars"))
    return int(total["n"] or 0)


def usage_set_quota(*, user: User, quota: int | None) -> UserUsage:
    """Set a user's own monthly limit (None: the site default; 0: unlimited)."""
    usage = _usage_row(user.pk, now=timezone.now())
    UserUsage.objects.filter(pk=usage.pk).update(quota_override=quota)
    usage.quota_override = quota
    return usage


# --- reads ----------------------------------------------------------------------


@dataclass(frozen=True)
class UsageSummary:
    tokens_this_period: int
    lifetime_tokens: int
    images_this_period: int
    quota: int  # 0 = unlimited
    period_start: dt.date
    resets_on: dt.date

    @property
    def limited(self) -> bool:
        return self.quota > 0

    @property
    def exceeded(self) -> bool:
        return self.limited and self.tokens_this_period >= self.quota

    @property
    def percent(self) -> int:
        if not self.limited:
            return 0
        return min(100, round(100 * self.tokens_this_period / self.quota))

    @property
    def remaining(self) -> int:
        return max(self.quota - self.tokens_this_period, 0) if self.limited else 0


def effective_quota(quota_override: int | None) -> int:
    """A user's own limit when set, else the site default; 0 means unlimited."""
    if quota_override is not None:
        return int(quota_override)
    return max(int(settings.USAGE_MONTHLY_TOKEN_QUOTA), 0)


def usage_summary(user: User, *, now: dt.datetime | None = None) -> UsageSummary:
    """The user's usage this month, rolling a row from an earlier month over first."""
    now = now or timezone.now()
    period = month_start(now)
    usage = _usage_row(user.pk, now=now)
    if usage.period_start < period:
        # Guarded: only the first reader (or writer) of the new month resets it.
        UserUsage.objects.filter(pk=usage.pk, period_start__lt=period).update(
            period_start=period, tokens_this_period=0, images_this_period=0
        )
        usage.refresh_from_db()
    return UsageSummary(
        tokens_this_period=usage.tokens_this_period,
        lifetime_tokens=usage.lifetime_tokens,
        images_this_period=usage.images_this_period,
        quota=effective_quota(usage.quota_override),
        period_start=usage.period_start,
        resets_on=next_month_start(now),
    )


def usage_quota_exceeded(user: User, *, now: dt.datetime | None = None) -> UsageSummary | None:
    """The summary when the user is at or over their monthly quota, else None."""
    summary = usage_summary(user, now=now)
    return summary if summary.exceeded else None


def usage_per_day(user: User, *, now: dt.datetime | None = None) -> list[tuple[dt.date, int]]:
    """Tokens per UTC day of the current month, every day up to today (zeros included). One query."""
    now = now or timezone.now()
    start = month_start(now)
    since = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    rows = (
        UsageTransaction.objects.filter(user=user, created_at__gte=since, created_at__lte=now)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(tokens=Sum(F("prompt_tokens") + F("completion_tokens")))
        .order_by("day")
    )
    by_day = {row["day"]: int(row["tokens"] or 0) for row in rows}
    today = now.astimezone(dt.UTC).date()
    return [
        (start + dt.timedelta(days=i), by_day.get(start + dt.timedelta(days=i), 0))
        for i in range((today - start).days + 1)
    ]


@dataclass(frozen=True)
class ChartBar:
    day: dt.date
    tokens: int
    x: float
    y: float
    width: float
    height: float

    @property
    def label_x(self) -> float:
        return self.x + self.width / 2


CHART_HEIGHT = 100  # the SVG's viewBox units; the page scales it to the card's width
CHART_SLOT = 10  # one slot per day of the month, so the chart keeps its shape as the month fills
CHART_BASELINE = 96


def usage_chart(days: list[tuple[dt.date, int]]) -> tuple[list[ChartBar], int]:
    """Bar geometry for ``usage_per_day``: the bars and the chart's width (whole month)."""
    if not days:
        return [], 31 * CHART_SLOT
    start = days[0][0]
    month_days = (next_month_start(dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)) - start).days
    top = max((tokens for _, tokens in days), default=0)
    usable = CHART_BASELINE - 6
    bars = []
    for index, (day, tokens) in enumerate(days):
        height = 0.0 if not top or not tokens else max(round(usable * tokens / top, 1), 1.0)
        bars.append(
            ChartBar(
                day=day,
                tokens=tokens,
                x=index * CHART_SLOT + 1,
                y=CHART_BASELINE - height,
                width=CHART_SLOT - 2,
                height=height,
            )
        )
    return bars, month_days * CHART_SLOT


def usage_totals() -> metrics.UsageTotals:
    """Every run ever charged, summed (the /metrics counters: the ledger is never changed)."""
    totals = UsageTransaction.objects.aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), images=Sum("image_count")
    )
    return metrics.UsageTotals(
        prompt_tokens=totals["prompt"] or 0,
        completion_tokens=totals["completion"] or 0,
        images=totals["images"] or 0,
    )
