"""What an export holds: every object the account owns, counted by type, and nothing of anyone else."""

from __future__ import annotations

import json

import pytest
from django.core.files.storage import default_storage

from accounts.models import User
from portability import archive
from portability.models import AccountExport
from tests.chat.factories import add_clip, add_exchange, chat_of
from tests.companions.factories import make_companion
from tests.portability.conftest import open_zip
from tests.portability.factories import LOREBOOK, make_account


@pytest.fixture
def built(user, other_user):
    """``user``'s account exported (with ``other_user``'s account beside it), and what each owns."""
    mine, theirs = make_account(user), make_account(other_user, name="Aya", shade=90)
    export = AccountExport.objects.create(owner=user)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    return export, mine, theirs


def manifest_of(zf) -> dict:
    return json.loads(zf.read("manifest.json"))


def names_under(zf, folder: str, suffix: str = "") -> list[str]:
    return [
        n for n in zf.namelist() if n.startswith(f"{folder}/") and n.endswith(suffix) and n != f"{folder}/"
    ]


def test_the_export_is_ready_with_its_file_size_and_counts(built):
    export, mine, _ = built
    assert export.status == "ready" and export.progress == 100
    assert export.expires_at > export.finished_at
    assert default_storage.size(export.file) == export.byte_size
    assert {k: export.counts[k] for k in mine.counts} == mine.counts


def test_the_manifest_counts_every_object_by_type(built):
    export, mine, _ = built
    with open_zip(export) as zf:
        manifest = manifest_of(zf)
    assert manifest["format"] == archive.FORMAT and manifest["version"] == archive.FORMAT_VERSION
    assert manifest["user"]["username"] == mine.user.username
    assert {k: manifest["counts"][k] for k in mine.counts} == mine.counts
    assert "audio_missing" not in manifest["counts"] and "pictures_missing" not in manifest["counts"]


def test_the_zip_holds_a_file_for_each_object_the_manifest_counts(built):
    export, mine, _ = built
    with open_zip(export) as zf:
        manifest = manifest_of(zf)
        listed = {entry["path"] for entry in manifest["files"]}
        assert listed | {"manifest.json"} <= set(zf.namelist())
        assert len(names_under(zf, "companions", ".json")) == mine.counts["companions"]
        assert len(names_under(zf, "companions", ".png")) == mine.counts["companions"]
        assert len(names_under(zf, "lorebooks", ".json")) == mine.counts["lorebooks"]
        assert len(names_under(zf, "pictures")) == mine.counts["pictures"]
        assert len([n for n in names_under(zf, "audio") if not n.endswith("/")]) == mine.counts["audio"]
        for fmt in ("json", "jsonl", "md"):
            assert len(names_under(zf, "conversations", f".{fmt}")) == mine.counts["conversations"]
        assert {"memories/", "audio/"} <= set(zf.namelist())
        assert len(names_under(zf, "memories", ".json")) == 2  # one file per companion with memories
        usage = json.loads(zf.read("usage/usage.json"))
        assert len(usage["transactions"]) == mine.counts["usage_transactions"]
        assert usage["counters"]["lifetime_tokens"] == 120
        lorebook = json.loads(zf.read(names_under(zf, "lorebooks")[0]))
        assert lorebook == LOREBOOK


def test_conversations_are_the_transcripts_of_the_chat_page(built):
    from chat import transcripts
    from chat.models import Conversation

    export, mine, _ = built
    with open_zip(export) as zf:
        for conversation in Conversation.objects.filter(owner=mine.user):
            name = f"conversations/{transcripts.export_filename(conversation, 'json')}"
            exported = json.loads(zf.read(name))
            expected = json.loads(transcripts.export_json(conversation))
            assert {**exported, "exported_at": None} == {**expected, "exported_at": None}
            jsonl = zf.read(name.removesuffix(".json") + ".jsonl").decode().splitlines()
            assert len(jsonl) == 1 + len(expected["messages"])  # ST's header line, then one per message
            markdown = zf.read(name.removesuffix(".json") + ".md").decode()
            assert all(message["text"] in markdown for message in expected["messages"])
        messages = sum(
            len(json.loads(zf.read(name))["messages"]) for name in names_under(zf, "conversations", ".json")
        )
    assert messages == mine.counts["messages"]


def test_pictures_are_the_stored_bytes(built):
    export, mine, _ = built
    with open_zip(export) as zf:
        exported = {zf.read(name) for name in names_under(zf, "pictures")}
    stored = set()
    for name in mine.files:
        if name.startswith("companions/"):
            with default_storage.open(name, "rb") as handle:
                stored.add(handle.read())
    assert exported == stored


def test_the_card_png_carries_the_card(built):
    from companions.cards import png_text_chunks

    export, _, _ = built
    with open_zip(export) as zf:
        png = zf.read(sorted(names_under(zf, "companions", ".png"))[0])
    assert "chara" in png_text_chunks(png)


def test_account_json_names_tokens_by_name_and_dates_only(built):
    export, mine, _ = built
    with open_zip(export) as zf:
        account = json.loads(zf.read("account.json"))
        everything = b"".join(zf.read(name) for name in zf.namelist())
    assert account["username"] == mine.user.username and account["email"] == mine.user.email
    assert [token["name"] for token in account["api_tokens"]] == ["laptop"]
    assert set(account["api_tokens"][0]) == {"name", "created_at", "last_used_at", "revoked_at"}
    assert mine.token_secret[:10].encode() not in everything
    assert User.objects.get(pk=mine.user.pk).password.encode() not in everything


def test_no_object_of_another_account_is_in_the_export(built):
    export, _, theirs = built
    with open_zip(export) as zf:
        everything = b"".join(zf.read(name) for name in zf.namelist())
    assert b"Aya" not in everything
    assert theirs.user.username.encode() not in everything
    assert theirs.user.email.encode() not in everything
    for name in theirs.files:
        if name.startswith(("companions/", "audio/")):
            with default_storage.open(name, "rb") as handle:
                assert handle.read() not in everything


def test_names_in_the_zip_are_ids_and_slugs_never_paths(built):
    export, _, _ = built
    with open_zip(export) as zf:
        names = zf.namelist()
    assert not [n for n in names if ".." in n or n.startswith("/") or "\\" in n or "etc/passwd" in n]
    assert any(n.endswith("-etcpasswd-rin.json") for n in names)


def test_progress_is_written_every_few_percent_not_per_row(user, monkeypatch):
    from portability import services

    for n in range(40):
        make_companion(user, name=f"Companion {n}")
    export = AccountExport.objects.create(owner=user)
    written: list[int] = []
    real = services.export_set_progress

    def record(export_id, *, progress):
        written.append(progress)
        return real(export_id, progress=progress)

    monkeypatch.setattr(services, "export_set_progress", record)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    assert export.status == "ready" and export.progress == 100
    assert written == sorted(written) and written[-1] < 100
    assert 3 <= len(written) <= 100 // archive.PROGRESS_STEP


def test_a_failure_marks_the_export_failed_and_stores_nothing(user, monkeypatch):
    make_account(user)
    before = set(default_storage.listdir("exports")[1])

    def broken(companion):
        raise RuntimeError("a bug")

    monkeypatch.setattr(archive, "build_card", broken)
    export = AccountExport.objects.create(owner=user)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    assert export.status == "failed" and export.error_text == archive.FAILED_TEXT
    assert not export.file
    assert set(default_storage.listdir("exports")[1]) == before


def test_an_account_deleted_while_its_export_is_built_leaves_nothing(
    user, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts import services as account_services

    make_account(user)
    export = AccountExport.objects.create(owner=user)
    real = archive._pictures

    def delete_meanwhile(writer, owner, progress):
        with django_capture_on_commit_callbacks(execute=True):
            account_services.user_delete(user=User.objects.get(pk=owner.pk))
        real(writer, owner, progress)
        progress.advance(100)

    monkeypatch.setattr(archive, "SECTIONS", (*archive.SECTIONS[:3], delete_meanwhile, *archive.SECTIONS[4:]))
    archive.export_build(str(export.pk))
    assert not AccountExport.objects.exists()
    assert default_storage.listdir("exports")[1] == []


def test_a_redelivered_task_builds_nothing(user):
    export = AccountExport.objects.create(owner=user, status="running", progress=40)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    assert export.status == "running" and export.progress == 40 and not export.file


def test_an_export_deleted_as_its_task_starts_builds_nothing(user, monkeypatch):
    from portability import services

    export = AccountExport.objects.create(owner=user)

    def claim_then_lose(export_id):
        claimed = services.AccountExport.objects.filter(pk=export_id).update(status="running")
        AccountExport.objects.filter(pk=export_id).delete()
        return bool(claimed)

    monkeypatch.setattr(services, "export_claim", claim_then_lose)
    archive.export_build(str(export.pk))  # no exception: the task ends quietly
    assert not AccountExport.objects.exists()


def test_each_lorebook_is_a_world_info_file_and_a_card_book_is_one_too(user):
    from lorebooks.formats import read_world_info
    from lorebooks.services import lorebook_import
    from tests.lorebooks.samples import card_book

    lorebook_import(user, json.dumps(card_book()).encode())
    lorebook_import(user, json.dumps(LOREBOOK).encode(), name="Second")
    export = AccountExport.objects.create(owner=user)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    with open_zip(export) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("lorebooks/") and n.endswith(".json"))
        assert len(names) == 2
        files = [json.loads(zf.read(n)) for n in names]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["counts"]["lorebooks"] == 2
    assert files[1] == {**LOREBOOK, "name": "Second"}
    assert len(read_world_info(files[0]).entries) == len(card_book()["entries"])


def test_memories_are_exported_per_companion_without_vectors(built):
    export, mine, _theirs = built
    with open_zip(export) as zf:
        files = {name: json.loads(zf.read(name)) for name in names_under(zf, "memories", ".json")}
    memories = [memory for data in files.values() for memory in data["memories"]]
    assert len(memories) == mine.counts["memories"]
    assert {data["companion"] for data in files.values()} == {"Mika", "../../etc/passwd Rin"}
    sister = next(m for m in memories if m["text"] == "The user's sister is called Mara")
    assert sister["pinned"] is True and sister["source"] == "extracted" and sister["created_at"]
    assert set(sister) == set(archive.MEMORY_FIELDS)
    assert {"text", "pinned", "source", "created_at", "updated_at"} <= set(sister)
    assert all("embedding" not in m and "embedding_model" not in m for m in memories)
    assert all(name.startswith("memories/") and ".." not in name for name in files)
    assert "Aya" not in {data["companion"] for data in files.values()}


def test_audio_is_each_spoken_reply_in_its_conversations_folder(built):
    from chat import transcripts
    from chat.models import SpeechClip

    export, mine, _ = built
    expected = {}
    for clip in SpeechClip.objects.filter(message__conversation__owner=mine.user).select_related(
        "message__conversation"
    ):
        folder = transcripts.export_filename(clip.message.conversation, "json").removesuffix(".json")
        extension = clip.file.name.rsplit(".", 1)[-1]
        with default_storage.open(clip.file.name, "rb") as handle:
            expected[f"audio/{folder}/reply-{clip.message_id}-{clip.index:03d}.{extension}"] = handle.read()
    assert len(expected) == 3 and len({name.rsplit("/", 1)[0] for name in expected}) == 2
    with open_zip(export) as zf:
        exported = {name: zf.read(name) for name in names_under(zf, "audio") if not name.endswith("/")}
        listed = {entry["path"]: entry["bytes"] for entry in manifest_of(zf)["files"]}
    assert exported == expected
    assert all(listed[name] == len(data) for name, data in expected.items())
    assert {name.rsplit("-", 1)[-1] for name in exported} == {"000.wav", "001.mp3", "000.ogg"}


@pytest.mark.parametrize("kind", ["audio", "pictures"])
def test_a_stored_file_that_is_gone_is_counted_as_missing_and_the_export_is_ready(user, kind):
    from chat.models import SpeechClip
    from media.models import StoredImage

    mine = make_account(user)
    rows = (
        SpeechClip.objects.filter(message__conversation__owner=user)
        if kind == "audio"
        else StoredImage.objects.filter(companion__owner=user)
    )
    gone = rows.order_by("pk").first()
    default_storage.delete(gone.file.name)
    export = AccountExport.objects.create(owner=user)
    archive.export_build(str(export.pk))
    export.refresh_from_db()
    assert export.status == "ready"
    assert export.counts[kind] == mine.counts[kind] - 1 and export.counts[f"{kind}_missing"] == 1
    with open_zip(export) as zf:
        names = [n for n in names_under(zf, kind) if not n.endswith("/")]
    assert len(names) == mine.counts[kind] - 1


def test_audio_counts_in_the_progress(user, monkeypatch):
    companion = make_companion(user, name="Talker")
    _, reply = add_exchange(chat_of(companion), companion, "Talk", "A lot.")
    for index in range(60):
        add_clip(reply, index)
    assert archive._units_of_work(user) == 1 + 1 + 60 + 3  # companion, conversation, clips, small sections
    export = AccountExport.objects.create(owner=user)
    written: list[int] = []
    real = archive.services.export_set_progress

    def record(export_id, *, progress):
        written.append(progress)
        return real(export_id, progress=progress)

    monkeypatch.setattr(archive.services, "export_set_progress", record)
    archive.export_build(str(export.pk))
    assert len(written) >= 10  # the clips move the bar, not only the rows before them
