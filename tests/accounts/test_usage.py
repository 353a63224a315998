"""Usage accounting as a service: charging, exactly once, monthly roll-over, quotas, per-day totals."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from accounts import usage
from accounts.models import UsageTransaction, UserUsage
from chat import runs, services
from chat.models import Message, PipelineRun
from companions.models import Companion
from tests.chat.factories import add_exchange, make_chat
from tests.companions.factories import make_companion

JAN_31 = dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)
FEB_1 = dt.datetime(2026, 2, 1, 0, 0, 30, tzinfo=dt.UTC)
FEB_10 = dt.datetime(2026, 2, 10, 12, 0, tzinfo=dt.UTC)
SIZES = {"width": 8, "height": 8, "byte_size": 10, "original_size": 10}


@pytest.fixture
def companion(user):
    return make_companion(user)


def running_run(companion, **fields) -> PipelineRun:
    """A reply being written in a new chat of ``companion`` (its tokens so far in ``fields``)."""
    chat = make_chat(companion)
    said, reply = add_exchange(chat, companion, "Hi", "Hello")
    return PipelineRun.objects.create(
        conversation=chat, turn=said.turn, companion=companion, reply=reply, status="running", **fields
    )


def complete(run: PipelineRun, prompt_tokens: int, completion_tokens: int) -> bool:
    """The reply step records each call's tokens on the run; ``finish`` completes and charges it."""
    runs.run_add_usage(
        run.pk, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, estimated=False
    )
    return runs.run_mark_completed(run.pk)


def charge(companion, *, tokens=(10, 5), images=0, now=None, run=None):
    return usage.usage_record_run(
        run_id=run.pk if run else None,
        user_id=companion.owner_id,
        companion_id=companion.pk,
        companion_name=companion.name,
        status="completed",
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        image_count=images,
        now=now,
    )


def test_a_completed_run_is_charged_to_its_user_and_companion(companion, user):
    run = running_run(companion)
    assert complete(run, 120, 30)
    [row] = UsageTransaction.objects.all()
    assert (row.user, row.companion, row.run_id) == (user, companion, run.pk)
    assert (row.prompt_tokens, row.completion_tokens, row.image_count) == (120, 30, 0)
    assert (row.companion_name, row.run_status) == ("Mika", "completed")
    totals = UserUsage.objects.get(user=user)
    assert (totals.tokens_this_period, totals.lifetime_tokens) == (150, 150)
    assert Companion.objects.get(pk=companion.pk).tokens_burned == 150


def test_a_repeated_completion_charges_once(companion, user):
    run = running_run(companion, prompt_tokens=100, completion_tokens=20)
    assert runs.run_mark_completed(run.pk)
    assert not runs.run_mark_completed(run.pk)
    # Even a path that skips the status guard cannot add a second row for the run.
    with transaction.atomic():
        assert charge(companion, run=run) is None
    assert UsageTransaction.objects.count() == 1
    assert UserUsage.objects.get(user=user).lifetime_tokens == 120
    assert Companion.objects.get(pk=companion.pk).tokens_burned == 120


def test_usage_rolls_back_with_the_runs_completion(companion, user):
    run = running_run(companion, prompt_tokens=100, completion_tokens=20)
    with pytest.raises(RuntimeError), transaction.atomic():
        runs.run_mark_completed(run.pk)
        raise RuntimeError("the completion's transaction fails")
    assert not UsageTransaction.objects.exists()
    assert PipelineRun.objects.get(pk=run.pk).status == "running"
    assert Companion.objects.get(pk=companion.pk).tokens_burned == 0


def test_a_picture_painted_by_the_run_is_counted(companion, user):
    from media.models import StoredImage

    run = running_run(companion, want_image=True)
    image = StoredImage.objects.create(companion=companion, kind="generated", file="images/x.jpg", **SIZES)
    Message.objects.filter(pk=run.reply_id).update(image=image)
    complete(run, 1, 1)
    assert UsageTransaction.objects.get().image_count == 1
    assert UserUsage.objects.get(user=user).images_this_period == 1


def test_an_older_picture_on_a_continued_reply_is_not_counted_again(companion, user):
    from media.models import StoredImage

    image = StoredImage.objects.create(companion=companion, kind="generated", file="images/x.jpg", **SIZES)
    StoredImage.objects.filter(pk=image.pk).update(created_at=FEB_1)  # painted by an earlier run
    run = running_run(companion, mode="continue", continue_from=len("Hello"))
    Message.objects.filter(pk=run.reply_id).update(image=image)
    complete(run, 1, 1)
    assert UsageTransaction.objects.get().image_count == 0


def test_a_failed_run_is_charged_what_it_streamed(companion, user):
    run = running_run(companion, prompt_tokens=40, completion_tokens=7)
    assert runs.run_mark_failed(run.pk, code="incomplete", text="cut off")
    row = UsageTransaction.objects.get()
    assert (row.prompt_tokens, row.completion_tokens, row.run_status) == (40, 7, "failed")
    assert Companion.objects.get(pk=companion.pk).tokens_burned == 47
    assert not runs.run_mark_failed(run.pk, code="incomplete", text="again")
    assert UsageTransaction.objects.count() == 1


def test_a_run_that_cost_nothing_leaves_no_row(companion, user):
    run = running_run(companion)
    runs.run_mark_failed(run.pk, code="auth", text="refused before any text")
    assert not UsageTransaction.objects.exists()


def test_a_cancelled_run_is_charged_once_when_the_worker_stops(companion, user):
    run = running_run(companion)
    services.run_cancel(user=user, conversation=run.conversation, run_id=run.pk)
    assert not UsageTransaction.objects.exists()  # the stream has not stopped yet
    PipelineRun.objects.filter(pk=run.pk).update(prompt_tokens=30, completion_tokens=4)
    assert runs.run_charge_ended(run.pk)
    assert not runs.run_charge_ended(run.pk)
    assert UsageTransaction.objects.get().run_status == "cancelled"
    assert UserUsage.objects.get(user=user).lifetime_tokens == 34


def test_a_new_month_resets_the_period_and_keeps_the_lifetime(companion, user):
    charge(companion, tokens=(100, 0), now=JAN_31)
    charge(companion, tokens=(7, 0), now=FEB_1)
    totals = UserUsage.objects.get(user=user)
    assert totals.period_start == dt.date(2026, 2, 1)
    assert (totals.tokens_this_period, totals.lifetime_tokens) == (7, 107)


def test_reading_in_a_new_month_rolls_over_without_a_write(companion, user):
    charge(companion, tokens=(100, 0), now=JAN_31)
    summary = usage.usage_summary(user, now=FEB_10)
    assert (summary.tokens_this_period, summary.lifetime_tokens) == (0, 100)
    assert summary.resets_on == dt.date(2026, 3, 1)
    assert UserUsage.objects.get(user=user).period_start == dt.date(2026, 2, 1)
    # A second reader in the same month changes nothing.
    charge(companion, tokens=(5, 0), now=FEB_10)
    assert usage.usage_summary(user, now=FEB_10).tokens_this_period == 5


def test_the_patched_clock_drives_the_period(companion, user, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: JAN_31)
    charge(companion, tokens=(10, 0))
    monkeypatch.setattr(timezone, "now", lambda: FEB_10)
    assert usage.usage_summary(user).tokens_this_period == 0
    assert usage.usage_summary(user).lifetime_tokens == 10


def test_the_month_starts_in_utc():
    late = dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # Feb 28 22:30 UTC
    assert usage.month_start(late) == dt.date(2026, 2, 1)
    assert usage.next_month_start(dt.datetime(2026, 12, 31, tzinfo=dt.UTC)) == dt.date(2027, 1, 1)


def test_the_quota_is_the_site_default_unless_the_user_has_one(user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 1000
    assert usage.usage_summary(user).quota == 1000
    usage.usage_set_quota(user=user, quota=50)
    assert usage.usage_summary(user).quota == 50
    usage.usage_set_quota(user=user, quota=0)
    assert not usage.usage_summary(user).limited  # 0 for this user: unlimited
    usage.usage_set_quota(user=user, quota=None)
    assert usage.usage_summary(user).quota == 1000
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 0
    assert not usage.usage_summary(user).limited


def test_the_quota_counts_this_month_only(companion, user, settings):
    settings.USAGE_MONTHLY_TOKEN_QUOTA = 100
    charge(companion, tokens=(100, 0), now=JAN_31)
    assert usage.usage_quota_exceeded(user, now=JAN_31) is not None
    assert usage.usage_quota_exceeded(user, now=FEB_1) is None
    summary = usage.usage_summary(user, now=FEB_1)
    assert (summary.percent, summary.remaining) == (0, 100)


def test_tokens_per_day_cover_the_month_so_far_in_one_query(
    companion, user, other_user, django_assert_num_queries
):
    charge(companion, tokens=(10, 5), now=dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC))
    charge(companion, tokens=(1, 1), now=dt.datetime(2026, 2, 2, 23, 59, tzinfo=dt.UTC))
    charge(companion, tokens=(100, 0), now=dt.datetime(2026, 2, 5, tzinfo=dt.UTC))
    charge(companion, tokens=(999, 0), now=JAN_31)  # last month
    other = make_companion(other_user)
    charge(other, tokens=(777, 0), now=dt.datetime(2026, 2, 3, tzinfo=dt.UTC))  # someone else
    with django_assert_num_queries(1):
        days = usage.usage_per_day(user, now=dt.datetime(2026, 2, 6, 8, tzinfo=dt.UTC))
    assert days == [
        (dt.date(2026, 2, 1), 0),
        (dt.date(2026, 2, 2), 17),
        (dt.date(2026, 2, 3), 0),
        (dt.date(2026, 2, 4), 0),
        (dt.date(2026, 2, 5), 100),
        (dt.date(2026, 2, 6), 0),
    ]


def test_a_deleted_companion_keeps_its_name_on_the_transactions(companion, user):
    run = running_run(companion)
    complete(run, 3, 2)
    companion.delete()
    row = UsageTransaction.objects.get()
    assert (row.companion, row.run, row.companion_name) == (None, None, "Mika")
    assert UserUsage.objects.get(user=user).lifetime_tokens == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_charges_for_a_user_without_a_row_all_count(make_user):
    """Several runs of a new user finish at once: one UserUsage row, every token counted."""
    import threading

    from django.db import connection

    owner = make_user(username="busy")
    companions = [make_companion(owner) for _ in range(6)]
    running = [running_run(c, prompt_tokens=10, completion_tokens=1) for c in companions]
    start = threading.Barrier(len(running))
    errors: list[BaseException] = []

    def finish(run) -> None:
        try:
            start.wait()
            runs.run_mark_completed(run.pk)
            runs.run_mark_completed(run.pk)  # a re-delivery
        except BaseException as exc:  # reported below, on the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(run,)) for run in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [totals] = UserUsage.objects.filter(user=owner)
    assert (totals.tokens_this_period, totals.lifetime_tokens) == (66, 66)
    assert UsageTransaction.objects.filter(user=owner).count() == 6


def test_a_run_failed_by_the_reconciler_mid_stream_is_charged_when_the_worker_stops(companion, user):
    run = running_run(companion)
    runs.run_mark_failed(run.pk, code="timed_out", text="stuck")  # nothing recorded yet: no row
    assert not UsageTransaction.objects.exists()
    PipelineRun.objects.filter(pk=run.pk).update(prompt_tokens=50, completion_tokens=9)  # the stream ends
    assert runs.run_charge_ended(run.pk)
    assert not runs.run_charge_ended(run.pk)
    assert UserUsage.objects.get(user=user).lifetime_tokens == 59


def test_a_completed_or_running_run_is_not_charged_as_ended(companion, user):
    run = running_run(companion, prompt_tokens=5)
    assert not runs.run_charge_ended(run.pk)
    runs.run_mark_completed(run.pk)
    assert not runs.run_charge_ended(run.pk)
    assert UsageTransaction.objects.count() == 1
