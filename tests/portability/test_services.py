"""An export's states: one being built per account, sent to its task after commit, expired and swept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from companionhub.errors import AppError
from portability import services
from portability.models import AccountExport


@pytest.fixture
def sent(monkeypatch):
    """The tasks sent to the broker, by name and arguments."""
    calls: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        services.current_app, "send_task", lambda name, args=(), **kw: calls.append((name, tuple(args)))
    )
    return calls


def ready_export(owner, *, expires_in: timedelta = timedelta(hours=1)) -> AccountExport:
    name = default_storage.save("exports/test.zip", ContentFile(b"zip"))
    return AccountExport.objects.create(
        owner=owner,
        status="ready",
        progress=100,
        file=name,
        byte_size=3,
        expires_at=timezone.now() + expires_in,
    )


def test_a_request_is_queued_and_sent_to_its_task_after_commit(
    user, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        export = services.export_request(user=user)
    assert export.status == "queued" and sent == []  # nothing sent before the row is committed
    for callback in callbacks:
        callback()
    assert sent == [(services.BUILD_TASK, (str(export.pk),))]


def test_one_export_at_a_time_per_account(user, other_user, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.export_request(user=user)
        with pytest.raises(AppError) as refused:
            services.export_request(user=user)
        services.export_request(user=other_user)  # another account is not held up
    assert refused.value.code == "export_running"
    assert AccountExport.objects.filter(owner=user).count() == 1
    assert len(sent) == 2
    services.export_claim(first.pk)
    services.export_mark_failed(first.pk, text="broken")
    with django_capture_on_commit_callbacks(execute=True):
        services.export_request(user=user)  # allowed again once the first ended


def test_the_database_refuses_two_active_exports_of_one_account(user):
    AccountExport.objects.create(owner=user, status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountExport.objects.create(owner=user, status="queued")


def test_a_ready_export_must_have_a_file_and_an_expiry(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountExport.objects.create(owner=user, status="ready")


def test_state_changes_are_guarded(user):
    export = AccountExport.objects.create(owner=user)
    assert not services.export_set_progress(export.pk, progress=10)  # not running yet
    assert services.export_claim(export.pk)
    assert not services.export_claim(export.pk)  # a re-delivered task
    assert services.export_set_progress(export.pk, progress=150)
    export.refresh_from_db()
    assert export.progress == 99  # 100 is for ready
    assert services.export_mark_failed(export.pk, text="broken")
    assert not services.export_mark_ready(export.pk, file="exports/x.zip", byte_size=1, counts={})


def test_marking_ready_an_export_that_went_removes_its_file(user, django_capture_on_commit_callbacks):
    export = AccountExport.objects.create(owner=user, status="running")
    name = default_storage.save("exports/orphan.zip", ContentFile(b"zip"))
    AccountExport.objects.filter(pk=export.pk).delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert not services.export_mark_ready(export.pk, file=name, byte_size=3, counts={})
    assert not default_storage.exists(name)


def test_ready_exports_expire_after_the_configured_time(user, settings):
    settings.EXPORT_TTL_SECONDS = 3600
    export = AccountExport.objects.create(owner=user, status="running")
    services.export_mark_ready(export.pk, file="exports/a.zip", byte_size=1, counts={"companions": 0})
    export.refresh_from_db()
    assert export.expires_at - export.finished_at == timedelta(hours=1)


def test_the_sweep_deletes_expired_exports_with_their_files(
    user, other_user, django_capture_on_commit_callbacks
):
    old = ready_export(user, expires_in=timedelta(minutes=-1))
    current = ready_export(other_user)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.exports_delete_expired() == 1
    assert list(AccountExport.objects.all()) == [current]
    assert not default_storage.exists(old.file)
    assert default_storage.exists(current.file)


def test_the_sweep_fails_exports_whose_task_was_lost(user):
    lost = AccountExport.objects.create(owner=user, status="running")
    AccountExport.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=3))
    services.exports_delete_expired()
    lost.refresh_from_db()
    assert lost.status == "failed" and "too long" in lost.error_text


def test_the_periodic_task_runs_the_sweep(user):
    from portability.tasks import delete_expired_exports

    ready_export(user, expires_in=timedelta(minutes=-1))
    assert delete_expired_exports.apply().get() == 1


def test_the_sweep_deletes_stray_zips_once_no_build_can_still_be_writing_them(user, settings):
    import os

    kept = ready_export(user)
    stray = default_storage.save("exports/stray.zip", ContentFile(b"zip"))
    fresh = default_storage.save("exports/fresh.zip", ContentFile(b"zip"))
    hours_ago = (timezone.now() - timedelta(hours=3)).timestamp()
    for name in (stray, kept.file):
        os.utime(default_storage.path(name), (hours_ago, hours_ago))
    services.exports_delete_expired()
    assert not default_storage.exists(stray)
    assert default_storage.exists(fresh)  # may be a build's zip about to be marked ready
    assert default_storage.exists(kept.file)
