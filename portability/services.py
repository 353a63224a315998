"""An export's life: requested, built, ready, failed, expired. The only code that changes its status.

    queued ──claim──> running ──> ready ──(expires)──> deleted
       └───────────────┴───────> failed

Every move is a guarded update (``filter(status=expected).update(...)``):
zero rows changed means the export moved or went (its account deleted) and
the caller stops, so a re-delivered task never builds twice. The database
allows one queued or running export per account.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import User
from companionhub.errors import AppError
from media.storage import delete_file_on_commit
from portability.models import AccountExport

log = structlog.get_logger(__name__)

Status = AccountExport.Status
ExportId = UUID | str
BUILD_TASK = "portability.build_export"
FOLDER = "exports"  # in private storage: every export's zip, under a name we make


def export_file_name() -> str:
    """A fresh, unguessable storage name for a zip; nothing from the account reaches it."""
    return f"{FOLDER}/{uuid.uuid4().hex}.zip"


def stuck_after() -> timedelta:
    """Older than this while queued or running, an export's task was lost (a dead worker, or a
    thread pool, which enforces no time limit): the sweep fails it."""
    return timedelta(seconds=max(3600, 2 * settings.EXPORT_TIME_LIMIT))


def export_request(*, user: User) -> AccountExport:
    """Start an export of ``user``'s account; its task is sent once the row is committed.

    Refused (``AppError("export_running")``) while another export of the
    account is being built.
    """
    try:
        with transaction.atomic():
            export = AccountExport.objects.create(owner=user)
    except IntegrityError:
        raise AppError(
            "export_running", _("An export of your account is already being prepared. Wait for it to finish.")
        ) from None
    export_id = str(export.pk)
    transaction.on_commit(lambda: current_app.send_task(BUILD_TASK, args=(export_id,)))
    log.info("export_requested", export_id=export_id, user_id=user.pk)
    return export


def export_claim(export_id: ExportId) -> bool:
    """queued -> running; False if it is not queued any more (built already, failed, or gone)."""
    return bool(
        AccountExport.objects.filter(pk=export_id, status=Status.QUEUED).update(status=Status.RUNNING)
    )


def export_set_progress(export_id: ExportId, *, progress: int) -> bool:
    """Report progress (0-99); False if the export is no longer running (its account deleted)."""
    return bool(
        AccountExport.objects.filter(pk=export_id, status=Status.RUNNING).update(
            progress=max(0, min(progress, 99))
        )
    )


def export_mark_ready(export_id: ExportId, *, file: str, byte_size: int, counts: dict[str, Any]) -> bool:
    """running -> ready with its file; expires ``EXPORT_TTL_SECONDS`` from now.

    False (and the file is removed) when the export stopped running meanwhile:
    a zip nobody can download must not stay behind.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = AccountExport.objects.filter(pk=export_id, status=Status.RUNNING).update(
            status=Status.READY,
            progress=100,
            file=file,
            byte_size=byte_size,
            counts=counts,
            finished_at=now,
            expires_at=now + timedelta(seconds=settings.EXPORT_TTL_SECONDS),
        )
        if not changed:
            delete_file_on_commit(file)
    if changed:
        log.info("export_ready", export_id=str(export_id), byte_size=byte_size, counts=counts)
    return bool(changed)


def export_mark_failed(export_id: ExportId, *, text: str) -> bool:
    """queued or running -> failed, with a message for the owner; the row expires like a ready one."""
    now = timezone.now()
    changed = AccountExport.objects.filter(pk=export_id, status__in=AccountExport.ACTIVE).update(
        status=Status.FAILED,
        error_text=text,
        finished_at=now,
        expires_at=now + timedelta(seconds=settings.EXPORT_TTL_SECONDS),
    )
    if changed:
        log.warning("export_failed", export_id=str(export_id), error=text)
    return bool(changed)


RESTARTED_TEXT = gettext_noop("The site restarted while your export was being prepared. Please try again.")
TOO_LONG_TEXT = gettext_noop("The export took too long and was stopped. Please try again.")


def exports_fail_unfinished() -> int:
    """Fail every queued or running export: for a process whose in-memory broker died with the
    previous one (the embedded default), so nothing would ever build them."""
    ids = list(AccountExport.objects.filter(status__in=AccountExport.ACTIVE).values_list("pk", flat=True))
    return sum(export_mark_failed(export_id, text=RESTARTED_TEXT) for export_id in ids)


def exports_delete_expired() -> int:
    """Delete exports past their expiry (their files go after commit), and fail lost ones.

    Rows are deleted one by one so the file receiver sees each of them.
    """
    now = timezone.now()
    for export_id in AccountExport.objects.filter(
        status__in=AccountExport.ACTIVE, created_at__lt=now - stuck_after()
    ).values_list("pk", flat=True):
        export_mark_failed(export_id, text=TOO_LONG_TEXT)
    with transaction.atomic():
        deleted, _ = AccountExport.objects.filter(expires_at__lte=now).delete()
    strays = _delete_stray_files(older_than=now - stuck_after())
    if deleted or strays:
        log.info("exports_expired_deleted", count=deleted, stray_files=strays)
    return deleted


def _delete_stray_files(*, older_than: datetime) -> int:
    """Zips no row names (a build that died between saving its zip and marking it ready), once
    they are older than any build still running."""
    try:
        _, names = default_storage.listdir(FOLDER)
    except FileNotFoundError:
        return 0
    paths = {f"{FOLDER}/{name}" for name in names if name.endswith(".zip")}
    named = set(AccountExport.objects.filter(file__in=paths).values_list("file", flat=True))
    stray = 0
    for path in sorted(paths - named):
        if default_storage.get_modified_time(path) < older_than:
            default_storage.delete(path)
            stray += 1
    return stray


def export_open(export: AccountExport) -> File:
    """The export's zip, open for reading (``FileNotFoundError`` when it is gone)."""
    if not export.file:
        raise FileNotFoundError(f"export {export.pk} has no file")
    try:
        return default_storage.open(export.file, "rb")
    except OSError as exc:
        raise FileNotFoundError(export.file) from exc
