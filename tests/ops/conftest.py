"""A small site to back up, move and compare: users, companions, chats (one-to-one, a group, a
branch) with their messages, turns and runs, pictures on disk."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from chat.conversations import conversation_branch
from chat.models import Conversation, Message, Participant, PipelineRun, Turn
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_exchange, add_reply, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion, png_bytes
from tests.conftest import require_service

COMPARED = (User, Companion, Conversation, Participant, Message, Turn, PipelineRun, StoredImage)
# Mika's chat (2), its branch (a copy of those 2), Noor's chat (30), the group (2).
SITE_MESSAGES = 36


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
    chat = make_chat(mika, title="Beach 🌊")
    asked = add_user_message(chat, "Hi — shall we go to the beach? 🌊")
    reply = add_reply(
        chat,
        mika,
        "Yes!",
        image=picture,
        completion_tokens=3,
        reasoning="She loves the sea.",
        alternatives=["Sure.", {"text": "Maybe", "n": 1.5}],
    )
    PipelineRun.objects.create(
        conversation=chat,
        turn=asked.turn,
        companion=mika,
        reply=reply,
        status="completed",
        step_durations={"reply": 120, "analyze": 15},
    )
    conversation_branch(user=alice, conversation=chat, message_id=reply.pk)  # points back at a message
    noor = make_chat(companions[2])
    for i in range(30):
        if i % 2:
            add_user_message(noor, f"m{i}")
        else:
            add_reply(noor, companions[2], f"m{i}")
    add_exchange(make_group_of(alice, companions[:2], replies_per_turn=1), companions[1], "Hi all", "Hi!")
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
