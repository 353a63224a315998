"""manage.py restore: back up, wipe, restore, and everything is back; and every refusal."""

from __future__ import annotations

import io
import json
import tarfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from companions.models import Companion
from ops.archive import ArchiveInvalid
from ops.backup import backup_create
from ops.restore import RestoreRefused, backup_restore
from tests.ops.conftest import SITE_MESSAGES, media_digests, site_rows, wipe

pytestmark = pytest.mark.django_db(transaction=True)


def run_restore(*args) -> str:
    out = StringIO()
    call_command("restore", *args, stdout=out)
    return out.getvalue()


def rewrite(archive: Path, target: Path, change) -> Path:
    """A copy of ``archive`` with ``change(name, data) -> data`` applied to each member."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return target


def round_trip(media_root: Path, backup_dir: Path) -> None:
    rows_before, files_before = site_rows(), media_digests(media_root)
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    assert not Companion.objects.exists() and media_digests(media_root) == {}

    output = run_restore(str(archive), "--yes")

    assert "Restored" in output and "MISMATCH" not in output
    assert "Media: 4 files" in output
    assert site_rows() == rows_before  # every companion, message, run, image and user, every field
    assert media_digests(media_root) == files_before  # byte for byte


def test_sqlite_backup_wipe_restore_brings_everything_back(site, media_root, backup_dir, sqlite_database):
    round_trip(media_root, backup_dir)


@pytest.mark.services
def test_postgresql_backup_wipe_restore_brings_everything_back(
    site, media_root, backup_dir, postgres_database
):
    round_trip(media_root, backup_dir)
    # pg_restore restored the sequences too: new rows do not collide with restored ones.
    companion = Companion.objects.order_by("pk").last()
    assert Companion.objects.create(owner=companion.owner, name="New", age=30).pk > companion.pk


def test_the_summary_compares_row_counts(site, media_root, backup_dir):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    output = run_restore(str(archive), "--yes")
    counted = ["chat.message", str(SITE_MESSAGES), str(SITE_MESSAGES)]
    assert any(line.split() == counted for line in output.splitlines())


def test_a_corrupt_archive_is_refused_and_nothing_changes(site, media_root, backup_dir, tmp_path):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(data))

    with pytest.raises(CommandError, match="Restore refused, nothing was changed"):
        run_restore(str(corrupt), "--yes")
    assert not Companion.objects.exists()
    assert media_digests(media_root) == {}


def test_a_tampered_file_fails_its_checksum(site, media_root, backup_dir, tmp_path):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    tampered = rewrite(
        archive,
        tmp_path / "tampered.tar.gz",
        lambda name, data: data + b"!" if name.endswith(".jpg") else data,
    )
    with pytest.raises(ArchiveInvalid, match="checksum mismatch: media/companions/"):
        backup_restore(archive=tampered)
    assert not Companion.objects.exists()
    assert media_digests(media_root) == {}


def test_a_file_missing_from_the_archive_is_refused(site, media_root, backup_dir, tmp_path):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    target = tmp_path / "short.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            if not member.name.endswith(".jpg"):
                out.addfile(member, source.extractfile(member))
    with pytest.raises(ArchiveInvalid, match="missing from the archive"):
        backup_restore(archive=target)


def test_an_unsafe_path_is_refused(tmp_path):
    target = tmp_path / "evil.tar.gz"
    with tarfile.open(target, "w:gz") as out:
        info = tarfile.TarInfo("../../etc/cron.d/x")
        info.size = 1
        out.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveInvalid, match="unsafe path"):
        backup_restore(archive=target)


def test_a_member_twice_is_refused(site, media_root, backup_dir, tmp_path):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    target = tmp_path / "twice.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            data = source.extractfile(member).read()
            if member.name.startswith("database/"):
                bad = tarfile.TarInfo(member.name)
                bad.size = 3
                out.addfile(bad, io.BytesIO(b"bad"))
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(ArchiveInvalid, match="appears twice"):
        backup_restore(archive=target)
    assert not Companion.objects.exists()


def test_a_non_empty_target_is_refused(site, media_root, backup_dir):
    archive = backup_create(output_dir=backup_dir).path
    rows_before = site_rows()
    with pytest.raises(CommandError, match=r"is not empty: accounts\.user \(2 rows\)") as caught:
        run_restore(str(archive), "--yes")
    assert "Restore only into an empty database" in str(caught.value)
    assert site_rows() == rows_before


def test_a_backup_of_another_database_kind_points_to_the_move(site, media_root, backup_dir, tmp_path):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    other = {"sqlite": "postgresql", "postgresql": "sqlite"}[connection.vendor]

    def relabel(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["database"]["vendor"] = other
        return json.dumps(manifest).encode()

    foreign = rewrite(archive, tmp_path / "foreign.tar.gz", relabel)
    with pytest.raises(
        RestoreRefused, match=f"holds a {other} database and the target is {connection.vendor}"
    ):
        backup_restore(archive=foreign)
    assert not Companion.objects.exists()


@pytest.mark.services
def test_a_sqlite_backup_into_postgresql_names_move_to_postgres(
    site, media_root, backup_dir, tmp_path, postgres_database
):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)

    def relabel(name, data):
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["database"] = {"vendor": "sqlite", "file": "database/db.pgdump"}
        return json.dumps(manifest).encode()

    with pytest.raises(RestoreRefused, match="move_to_postgres --from-sqlite"):
        backup_restore(archive=rewrite(archive, tmp_path / "sqlite.tar.gz", relabel))


def test_without_yes_it_fails_fast_and_changes_nothing(site, media_root, backup_dir):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    with pytest.raises(CommandError, match="re-run with --yes"):
        run_restore(str(archive))
    assert not Companion.objects.exists()


def test_check_only_verifies(site, media_root, backup_dir):
    archive = backup_create(output_dir=backup_dir).path
    wipe(media_root)
    output = run_restore(str(archive), "--check")
    assert "is intact" in output and "can be restored with --yes" in output
    assert not Companion.objects.exists()
    assert media_digests(media_root) == {}


def test_a_missing_archive_is_refused(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run_restore(str(tmp_path / "nope.tar.gz"), "--yes")
