"""The export through a real Celery worker: requested, built on the exports queue, downloaded."""

from __future__ import annotations

import json
import time
import zipfile

import pytest
from django.urls import reverse

from companionhub.celery import app
from portability.models import AccountExport
from tests.portability.factories import make_account


def wait_for(export: AccountExport, timeout: float = 30.0) -> AccountExport:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        export.refresh_from_db()
        if export.status not in AccountExport.ACTIVE:
            return export
        time.sleep(0.05)
    raise AssertionError(f"the export is still {export.status} after {timeout} s")


def test_the_build_task_goes_to_the_exports_queue():
    route = app.amqp.router.route({}, "portability.build_export")
    assert route["queue"].name == "exports"


@pytest.mark.django_db(transaction=True)
def test_an_export_requested_on_the_profile_is_built_by_a_worker(chat_worker, client, user, tmp_path):
    account = make_account(user)
    client.force_login(user)
    response = client.post(reverse("portability:start"))
    assert response.status_code == 302
    export = wait_for(AccountExport.objects.get(owner=user, status__in=AccountExport.ACTIVE))
    assert export.status == "ready", export.error_text
    download = client.get(reverse("portability:download", args=[export.pk]))
    archive_path = tmp_path / "export.zip"
    archive_path.write_bytes(b"".join(download.streaming_content))
    with zipfile.ZipFile(archive_path) as zf:
        counts = json.loads(zf.read("manifest.json"))["counts"]
    assert {k: counts[k] for k in account.counts} == account.counts
