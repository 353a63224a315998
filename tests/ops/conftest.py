"""A small site to back up, move and compare: users, companions, messages, runs, pictures on disk."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from chat.models import Message, PipelineRun
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.companions.factories import make_companion, png_bytes
from tests.conftest import require_service

COMPARED = (User, Companion, Message, PipelineRun, StoredImage)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def backup_dir(settings, tmp_path) -> Path:
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def sqlite_database():
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite path runs when the test database is SQLite")


@pytest.fixture
def postgres_database():
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "DATABASE_URL does not point at PostgreSQL")


@pytest.fixture
def site(make_user):
    """Two owners, three companions with header pictures, a conversation with a generated picture."""
    alice = make_user(username="alice", display_name="Alice")
    bob = make_user(username="bob")
    companions = [
        make_companion(alice, name="Mika", config={"b": 2, "a": [1, "x"]}),
        make_companion(alice, name="Rin"),
        make_companion(bob, name="Noor"),
    ]
    for n, companion in enumerate(companions):
        header = store_image(png_bytes(300 + n, 200, color=(n * 60, 90, 120)), companion, "header")
        Companion.objects.filter(pk=companion.pk).update(header_image=header)
    mika = companions[0]
    picture = store_image(png_bytes(640, 480, color=(10, 200, 30)), mika, "generated", prompt="on a beach")
    asked = Message.objects.create(companion=mika, role="user", content="Hi — shall we go to the beach? 🌊")
    reply = Message.objects.create(
        companion=mika,
        role="assistant",
        content="Yes!",
        image=picture,
        completion_tokens=3,
        alternatives=["Sure.", {"text": "Maybe", "n": 1.5}],
    )
    PipelineRun.objects.create(
        companion=mika,
        user_message=asked,
        assistant_message=reply,
        step_durations={"reply": 120, "analyze": 15},
    )
    for i in range(30):
        Message.objects.create(
            companion=companions[2], role="user" if i % 2 else "assistant", content=f"m{i}"
        )
    return companions


def site_rows() -> dict[str, list[dict]]:
    """Every compared row, every field, ordered by primary key."""
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in COMPARED}


def media_digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def wipe(media_root: Path) -> None:
    """Empty the database (as `flush` does) and delete every media file."""
    call_command("flush", interactive=False, verbosity=0)
    shutil.rmtree(media_root)
    media_root.mkdir()
