"""manage.py backup: the archive, its manifest, atomic writing, retention."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from ops import backup as backup_module
from ops.archive import archive_verify
from ops.backup import backup_create, backups_prune
from ops.postgres import libpq_env
from tests.ops.conftest import SITE_MESSAGES, media_digests

pytestmark = pytest.mark.django_db(transaction=True)


def run_backup(*args) -> str:
    out = StringIO()
    call_command("backup", *args, stdout=out)
    return out.getvalue()


def only_archive(directory: Path) -> Path:
    (archive,) = directory.glob("companionhub-backup-*.tar.gz")
    return archive


def test_it_writes_one_timestamped_archive_into_backup_dir(site, backup_dir):
    output = run_backup()
    archive = only_archive(backup_dir)
    assert f"Wrote {archive}" in output
    assert archive.name.startswith("companionhub-backup-20")
    assert archive.stat().st_mode & 0o077 == 0  # private: password hashes and pictures
    assert [p.name for p in backup_dir.iterdir()] == [archive.name]  # no staging left behind


def test_the_manifest_describes_the_database_and_media(site, backup_dir, media_root):
    result = backup_create(output_dir=backup_dir)
    manifest = result.manifest
    assert manifest["format_version"] == 1
    assert datetime.fromisoformat(manifest["created_at"])
    assert manifest["database"]["vendor"] == connection.vendor
    assert manifest["migrations"]["chat"].startswith("00")
    # The newest migration of each app, as the graph on disk names it.
    assert manifest["migrations"]["media"] == MigrationLoader(None).graph.leaf_nodes("media")[0][1]
    counts = manifest["row_counts"]
    assert counts["accounts.user"] == 2
    assert counts["companions.companion"] == 3
    assert counts["chat.message"] == SITE_MESSAGES
    assert counts["chat.conversation"] == 4
    assert counts["media.storedimage"] == 4
    assert counts["chat.pipelinerun"] == 1
    on_disk = media_digests(media_root)
    assert manifest["media"] == {
        "files": 4,
        "bytes": sum(p.stat().st_size for p in media_root.rglob("*") if p.is_file()),
    }
    for name, digest in on_disk.items():
        assert manifest["files"][f"media/{name}"]["sha256"] == digest
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
        database = tar.extractfile(manifest["database"]["file"]).read()
    assert set(names) == {*manifest["files"], "manifest.json"}
    assert manifest["files"][manifest["database"]["file"]]["sha256"] == hashlib.sha256(database).hexdigest()
    assert archive_verify(result.path) == manifest


def test_the_sqlite_copy_is_a_complete_standalone_database(site, backup_dir, tmp_path, sqlite_database):
    import sqlite3

    result = backup_create(output_dir=backup_dir)
    with tarfile.open(result.path) as tar:
        tar.extract("database/db.sqlite3", tmp_path, filter="data")
    copy = sqlite3.connect(tmp_path / "database" / "db.sqlite3")
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert copy.execute("SELECT COUNT(*) FROM chat_message").fetchone()[0] == SITE_MESSAGES
    copy.close()


def test_two_backups_in_one_second_get_two_names(site, backup_dir):
    now = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)
    first = backup_create(output_dir=backup_dir, now=now).path
    second = backup_create(output_dir=backup_dir, now=now).path
    assert first.name == "companionhub-backup-20261125-200000.tar.gz"
    assert second.name == "companionhub-backup-20261125-200000-1.tar.gz"


def test_a_failure_part_way_leaves_no_archive(site, backup_dir, monkeypatch):
    def broken(*args, **kwargs):
        yield from ()
        raise OSError("disk full")

    monkeypatch.setattr(backup_module, "_media_files", broken)
    with pytest.raises(OSError, match="disk full"):
        backup_create(output_dir=backup_dir)
    assert list(backup_dir.iterdir()) == []


def test_retention_deletes_only_old_backup_archives(backup_dir):
    backup_dir.mkdir()
    names = {
        "companionhub-backup-20261101-030000.tar.gz": True,  # 24 days old
        "companionhub-backup-20261117-030000-1.tar.gz": True,  # 8 days
        "companionhub-backup-20261119-030000.tar.gz": False,  # 6 days
        "companionhub-backup-20261125-030000.tar.gz": False,  # today
        "companionhub-backup-20261101-030000.tar.gz.bak": False,  # not our name
        "companionhub-backup-latest.tar.gz": False,
        "notes-20261101.txt": False,
        "db-20200101-000000.tar.gz": False,
    }
    for name in names:
        (backup_dir / name).write_bytes(b"x")
    (backup_dir / "companionhub-backup-20200101-000000.tar.gz").mkdir()  # a directory is never deleted

    removed = backups_prune(directory=backup_dir, keep_days=7, now=datetime(2026, 11, 25, 20, 0, tzinfo=UTC))

    assert sorted(p.name for p in removed) == sorted(name for name, old in names.items() if old)
    left = {p.name for p in backup_dir.iterdir()}
    assert left == {name for name, old in names.items() if not old} | {
        "companionhub-backup-20200101-000000.tar.gz"
    }


def test_keep_days_prunes_after_writing(site, backup_dir):
    backup_dir.mkdir()
    (backup_dir / "companionhub-backup-20000101-000000.tar.gz").write_bytes(b"old")
    output = run_backup("--keep-days", "3")
    assert "Removed 1 backup(s) older than 3 day(s)" in output
    assert only_archive(backup_dir).name.startswith("companionhub-backup-20")
    assert not (backup_dir / "companionhub-backup-20000101-000000.tar.gz").exists()


def test_keep_days_must_be_at_least_one(backup_dir):
    with pytest.raises(CommandError):
        call_command("backup", "--keep-days", "0")


def test_output_dir_overrides_backup_dir(site, backup_dir, tmp_path):
    run_backup("--output-dir", str(tmp_path / "elsewhere"))
    assert only_archive(tmp_path / "elsewhere")
    assert not backup_dir.exists()


def test_the_database_password_goes_through_the_environment_only(monkeypatch):
    monkeypatch.setenv("PGHOST", "somewhere-else")
    monkeypatch.setenv("PGPASSWORD", "inherited")
    env = libpq_env(
        {
            "NAME": "ch",
            "USER": "ch",
            "PASSWORD": "s3cret",
            "HOST": "db",
            "PORT": 5433,
            "OPTIONS": {"sslmode": "require", "pool": {"min_size": 1}},
        }
    )
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGHOST"] == "db"
    assert env["PGPORT"] == "5433"
    assert env["PGDATABASE"] == "ch"
    assert env["PGSSLMODE"] == "require"
    assert "PATH" in env
    # Nothing inherited can send the dump to a different server.
    assert libpq_env({"NAME": "ch"}).get("PGHOST") is None


def test_client_programs_get_no_password_argument_and_no_stdin(monkeypatch):
    import subprocess

    from ops import postgres

    calls = []

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(postgres.shutil, "which", lambda program: f"/usr/bin/{program}")
    monkeypatch.setattr(postgres.subprocess, "run", fake_run)
    postgres.run_tool("pg_dump", ["--format=custom"], {"NAME": "ch", "USER": "ch", "PASSWORD": "s3cret"})

    ((args, kwargs),) = calls
    assert args[:2] == ["/usr/bin/pg_dump", "--no-password"]  # a missing password fails, never prompts
    assert not any("s3cret" in arg for arg in args)
    assert kwargs["env"]["PGPASSWORD"] == "s3cret"
    assert kwargs["stdin"] is subprocess.DEVNULL
    assert "lock_timeout=" in kwargs["env"]["PGOPTIONS"]  # a database still in use fails, never hangs


def test_a_failing_client_program_says_why(monkeypatch):
    from ops import postgres

    monkeypatch.setattr(postgres.shutil, "which", lambda program: None)
    with pytest.raises(postgres.PostgresToolError, match="pg_dump was not found on PATH"):
        postgres.run_tool("pg_dump", [], {"NAME": "ch"})


@pytest.mark.services
def test_postgresql_backups_use_pg_dump_custom_format(site, backup_dir, postgres_database):
    result = backup_create(output_dir=backup_dir)
    assert result.manifest["database"] == {"vendor": "postgresql", "file": "database/db.pgdump"}
    with tarfile.open(result.path) as tar:
        assert tar.extractfile("database/db.pgdump").read(5) == b"PGDMP"  # pg_dump's custom format
    assert json.loads(json.dumps(result.manifest))["row_counts"]["chat.message"] == SITE_MESSAGES
