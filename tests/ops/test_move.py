"""manage.py move_to_postgres: a SQLite install into a fresh PostgreSQL database, row for row."""

from __future__ import annotations

import copy
import os
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import environ
import psycopg
import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import User
from chat.models import Conversation, Message, Participant, PipelineRun, Turn
from companions.models import Companion
from media.models import StoredImage
from ops import dbstate, move
from ops.move import (
    MoveMismatch,
    canonical_row,
    database_alias,
    models_in_dependency_order,
    move_sqlite_to_postgres,
    sqlite_settings,
)
from tests.companions.factories import VALID, png_bytes
from tests.conftest import require_service

BUILD = "move_build"
TARGET = "move_target"
COMPARED = (
    User,
    User.groups.through,
    Group,
    Session,
    Companion,
    StoredImage,
    Conversation,
    Participant,
    Message,
    Turn,
    PipelineRun,
)


def rows(alias: str) -> dict[str, list[tuple]]:
    return {
        model._meta.label: list(model._base_manager.using(alias).order_by("pk").values_list())
        for model in COMPARED
    }


@pytest.fixture(autouse=True)
def _database_access(django_db_blocker):
    """Only aliases made for the test are used. Django's test cases refuse aliases added at
    run time, so these tests open the blocker instead of taking the test database."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def sqlite_source(tmp_path, media_root) -> tuple[Path, dict]:
    """An embedded-default database file (WAL, like the real one) with a little of everything."""
    path = tmp_path / "db.sqlite3"
    build = sqlite_settings(path, read_only=False)
    build["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL;"
    with database_alias(BUILD, build):
        call_command("migrate", database=BUILD, verbosity=0)
        group = Group.objects.using(BUILD).create(name="testers")
        owners = []
        for name in ("alice", "bob"):
            owner = User.objects.db_manager(BUILD).create_user(
                username=name, email=f"{name}@example.com", password="correct-horse-battery-staple"
            )
            owner.groups.add(group)
            owners.append(owner)
        for n in range(3):
            companion = Companion.objects.using(BUILD).create(
                owner=owners[n % 2], **{**VALID, "name": f"C{n}", "config": {"z": 1, "a": [n, "ü"]}}
            )
            image = None
            for kind in ("header", "generated"):
                name = default_storage.save(
                    f"companions/{companion.pk}/{kind}s/{uuid.uuid4().hex}.jpg",
                    ContentFile(png_bytes(20 + n)),
                )
                image = StoredImage.objects.using(BUILD).create(
                    companion=companion,
                    kind=kind,
                    file=name,
                    width=20,
                    height=48,
                    byte_size=9,
                    original_size=10,
                )
                if kind == "header":
                    Companion.objects.using(BUILD).filter(pk=companion.pk).update(header_image=image)
            chat = Conversation.objects.using(BUILD).create(owner=companion.owner, title=f"Chat {n} ✨")
            Participant.objects.using(BUILD).create(conversation=chat, companion=companion)
            for i in range(60):
                said = i % 2 == 0
                message = Message.objects.using(BUILD).create(
                    conversation=chat,
                    role="user" if said else "assistant",
                    sender=None if said else companion,
                    content=f"line {i} — ✨ 'quoted' \"twice\"\n",
                    image=image if i == 59 else None,
                    alternatives=[{"text": "older", "score": 0.25}] if i % 7 == 0 else [],
                )
                if said:
                    turn = Turn.objects.using(BUILD).create(
                        conversation=chat, message=message, order=[companion.pk], status="done"
                    )
            PipelineRun.objects.using(BUILD).create(
                conversation=chat,
                turn=turn,
                companion=companion,
                reply=message,
                status="completed",
                step_durations={"reply": 1234, "analyze": 5},
                started_at=timezone.now() - timedelta(seconds=3, microseconds=123457),
                finished_at=timezone.now(),
            )
        # A branch points back at a message of another chat, and a message points at its chat:
        # a cycle of foreign keys the move copies in one transaction. And a group of two.
        branch = Conversation.objects.using(BUILD).create(
            owner=owners[0], title="Chat 0 (branch)", branched_from=message
        )
        Participant.objects.using(BUILD).create(conversation=branch, companion=companion)
        crew = Conversation.objects.using(BUILD).create(owner=owners[0], kind="group", title="Crew")
        for position, member in enumerate(Companion.objects.using(BUILD).filter(owner=owners[0])):
            Participant.objects.using(BUILD).create(conversation=crew, companion=member, position=position)
        for key in ("zz", "Aa", "ab", "_x"):
            Session.objects.using(BUILD).create(
                session_key=key * 16, session_data="e30", expire_date=timezone.now() + timedelta(days=1)
            )
        expected = rows(BUILD)
    return path, expected


@pytest.fixture
def pg_target():
    """A fresh PostgreSQL database for this test only, as the alias ``move_target``; dropped afterwards.

    It creates and drops a database, so it runs only on a server named for the tests
    (``TEST_DATABASE_URL``, as CI sets it), never on one a developer's ``DATABASE_URL`` names.
    """
    named = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not named:
        require_service("PostgreSQL for tests", "set TEST_DATABASE_URL to a PostgreSQL the tests may use")
    server = environ.Env.db_url_config(named)
    if connection.vendor != "postgresql" or server["ENGINE"] != connection.settings_dict["ENGINE"]:
        require_service("PostgreSQL", "TEST_DATABASE_URL does not point at PostgreSQL")
    # The server TEST_DATABASE_URL names, whatever DATABASE_URL says: the only one touched here.
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.update({key: server.get(key, "") for key in ("HOST", "PORT", "USER", "PASSWORD")})
    name = f"companionhub_move_test_{uuid.uuid4().hex[:10]}"
    settings_dict["NAME"] = name
    settings_dict["OPTIONS"].pop("pool", None)
    admin = {
        "dbname": "postgres",
        "host": settings_dict["HOST"] or None,
        "port": settings_dict["PORT"] or None,
        "user": settings_dict["USER"] or None,
        "password": settings_dict["PASSWORD"] or None,
        "autocommit": True,
    }
    with psycopg.connect(**admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with database_alias(TARGET, settings_dict):
            yield TARGET
    finally:
        # Only the database this fixture created above, under a name of its own: never one
        # the test run did not make.
        assert name.startswith("companionhub_move_test_")
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_move(path: Path, alias: str = TARGET) -> str:
    out = StringIO()
    call_command("move_to_postgres", "--from-sqlite", str(path), "--database", alias, stdout=out)
    return out.getvalue()


@pytest.mark.services
def test_every_row_arrives_with_its_key_and_the_checksums_match(pg_target, sqlite_source):
    path, expected = sqlite_source

    output = run_move(path)

    assert "every count and checksum matches and every media file is present" in output
    assert any(
        line.split()[:4] == ["chat.message", "180", "180", line.split()[3]] for line in output.splitlines()
    )
    assert "MISMATCH" not in output
    assert rows(pg_target) == expected
    # Sequences were moved past the copied keys: a new row does not collide.
    last = Companion.objects.using(pg_target).order_by("pk").last()
    new = Companion.objects.using(pg_target).create(owner=last.owner, **VALID)
    assert new.pk > last.pk
    # The source is untouched (opened read-only).
    with database_alias(BUILD, sqlite_settings(path)):
        assert rows(BUILD) == expected


@pytest.mark.services
def test_a_non_empty_target_is_refused(pg_target, sqlite_source):
    path, _ = sqlite_source
    run_move(path)
    with pytest.raises(CommandError, match=r"Nothing was copied: .* is not empty: accounts\.user \(2 rows\)"):
        run_move(path)


def lose_a_message(alias: str) -> None:
    Message.objects.using(alias).filter(pk=Message.objects.using(alias).order_by("pk")[0].pk).delete()


def change_a_message(alias: str) -> None:
    Message.objects.using(alias).filter(pk=Message.objects.using(alias).order_by("pk")[0].pk).update(
        content="x"
    )


@pytest.mark.services
@pytest.mark.parametrize("damage", [lose_a_message, change_a_message])
def test_a_difference_rolls_everything_back(pg_target, sqlite_source, monkeypatch, damage):
    path, _ = sqlite_source
    real_copy = move._copy

    def damaging_copy(model, source_alias, target_alias):
        real_copy(model, source_alias, target_alias)
        if model is Message:
            damage(target_alias)

    monkeypatch.setattr(move, "_copy", damaging_copy)
    with pytest.raises(MoveMismatch) as caught:
        move_sqlite_to_postgres(source=path, target_alias=pg_target)
    assert [check.label for check in caught.value.report.mismatched] == ["chat.message"]
    assert dbstate.occupied_tables(dbstate.database_counts(pg_target)) == {}


@pytest.mark.services
def test_missing_media_files_are_reported(pg_target, sqlite_source, media_root):
    path, _ = sqlite_source
    gone = next(media_root.rglob("*.jpg"))
    gone.unlink()
    with pytest.raises(CommandError, match=r"1 file\(s\) the rows name are not in"):
        run_move(path)
    assert Message.objects.using(pg_target).count() == 180  # the rows did move


@pytest.mark.services
def test_a_source_behind_on_migrations_is_refused(pg_target, sqlite_source):
    import sqlite3

    path, _ = sqlite_source
    with sqlite3.connect(path) as db:
        latest = db.execute("SELECT MAX(name) FROM django_migrations WHERE app = 'chat'").fetchone()[0]
        db.execute("DELETE FROM django_migrations WHERE app = 'chat' AND name = ?", (latest,))
    with pytest.raises(CommandError, match="lacks 1 migration"):
        run_move(path)
    assert Message.objects.using(pg_target).count() == 0


def test_the_target_must_be_postgresql(tmp_path):
    with (
        database_alias("sqlite_target", sqlite_settings(tmp_path / "t.sqlite3", read_only=False)),
        pytest.raises(CommandError, match="the target must be PostgreSQL"),
    ):
        run_move(tmp_path / "source.sqlite3", alias="sqlite_target")


@pytest.mark.services
def test_a_missing_source_is_refused(tmp_path, pg_target):
    with pytest.raises(CommandError, match="there is no SQLite database at"):
        run_move(tmp_path / "nope.sqlite3")


def test_rows_serialize_the_same_whatever_order_json_keys_come_back_in():
    moment = timezone.now()
    assert canonical_row((1, {"b": 1, "a": [2, {"y": 1, "x": 0}]}, moment)) == canonical_row(
        (1, {"a": [2, {"x": 0, "y": 1}], "b": 1}, moment)
    )
    assert canonical_row((1, "a")) != canonical_row((1, "b"))
    assert canonical_row((uuid.UUID(int=5),)) == canonical_row((str(uuid.UUID(int=5)),))


def test_referenced_models_are_copied_first():
    order = models_in_dependency_order(dbstate.installed_models())
    assert order.index(User) < order.index(Companion) < order.index(Message) < order.index(PipelineRun)
    assert max(order.index(Conversation), order.index(Companion)) < order.index(Participant)
    assert order.index(Message) < order.index(Turn) < order.index(PipelineRun)
    assert order.index(Group) < order.index(User.groups.through)
