"""Orphan image files: reported by the periodic task, listed and removed by ``media_orphans``."""

import os
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from chat.models import SpeechClip
from media import orphans, tasks
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_clip, add_exchange, chat_of
from tests.companions.factories import png_bytes

HOUR = 3600


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


def make_file(root, name: str, *, age_seconds: float = 2 * HOUR, data: bytes = b"x" * 10):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def age(root, image: StoredImage, seconds: float = 2 * HOUR) -> None:
    then = time.time() - seconds
    os.utime(root / image.file.name, (then, then))


def run(*args) -> str:
    out = StringIO()
    call_command("media_orphans", *args, stdout=out)
    return out.getvalue()


def test_files_in_no_row_are_found_and_stored_images_are_not(media_root, companion):
    kept = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    age(media_root, kept)
    make_file(media_root, "companions/1/generated/lost.jpg")
    make_file(media_root, "companions/2/headers/gone.jpg")
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == ["companions/1/generated/lost.jpg", "companions/2/headers/gone.jpg"]
    assert report.bytes == 20
    assert report.scanned == 3


@pytest.mark.parametrize(
    "name",
    [
        "stray.txt",
        "backup-2026-11-25.tar.gz",
        "companions/1/generated/notes.txt",
        "companions/1/other/picture.jpg",
        "companions/x/generated/picture.jpg",
        "elsewhere/companions/1/generated/picture.jpg",
        "companions/1/generated/deeper/picture.jpg",
    ],
)
def test_files_the_site_did_not_write_are_never_touched(media_root, companion, name):
    foreign = make_file(media_root, name)
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == [] and report.foreign == 1
    out = run("--delete", "--older-than-minutes", "0")
    assert foreign.exists()
    assert "1 file(s) the site did not write skipped" in out


def test_a_forged_report_cannot_delete_a_foreign_file(media_root, companion):
    foreign = make_file(media_root, "keep-me.txt")
    assert orphans.delete_orphans(orphans.OrphanReport(orphans=["keep-me.txt"])) == 0
    assert foreign.exists()


def test_a_file_being_written_now_is_never_an_orphan(media_root, companion):
    make_file(media_root, "companions/1/generated/fresh.jpg", age_seconds=5)
    make_file(media_root, "companions/1/generated/old.jpg", age_seconds=61 * 60)
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == ["companions/1/generated/old.jpg"]
    assert report.too_new == 1
    out = run("--delete")
    assert (media_root / "companions/1/generated/fresh.jpg").exists()
    assert not (media_root / "companions/1/generated/old.jpg").exists()
    assert "Deleted 1 file(s)." in out


def test_the_command_reports_without_deleting_by_default(media_root, companion):
    lost = make_file(media_root, "companions/1/headers/lost.jpg")
    out = run()
    assert "companions/1/headers/lost.jpg" in out
    assert "1 orphan file(s)" in out and "--delete" in out
    assert lost.exists()


def test_delete_removes_only_orphans(media_root, companion):
    kept = store_image(png_bytes(), companion, StoredImage.Kind.HEADER)
    age(media_root, kept)
    lost = make_file(media_root, "companions/1/headers/lost.jpg")
    run("--delete")
    assert not lost.exists()
    assert (media_root / kept.file.name).exists()
    assert StoredImage.objects.filter(pk=kept.pk).exists()


def test_older_than_minutes_is_honoured(media_root, companion):
    recent = make_file(media_root, "companions/1/generated/recent.jpg", age_seconds=10 * 60)
    run("--delete", "--older-than-minutes", "30")
    assert recent.exists()
    run("--delete", "--older-than-minutes", "5")
    assert not recent.exists()


def test_a_negative_age_is_refused(db):
    with pytest.raises(CommandError):
        run("--older-than-minutes", "-1")


def test_symbolic_links_are_never_followed_nor_deleted(media_root, tmp_path, companion):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = make_file(outside, "secret.jpg")
    (media_root / "companions/1/generated").mkdir(parents=True)
    (media_root / "companions/1/generated/link-to-file.jpg").symlink_to(secret)
    (media_root / "linked-dir").symlink_to(outside, target_is_directory=True)
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == []
    assert report.symlinks_skipped == 2
    run("--delete", "--older-than-minutes", "0")
    assert secret.exists()
    assert (media_root / "companions/1/generated/link-to-file.jpg").is_symlink()


def test_a_row_created_after_the_scan_saves_its_file(media_root, companion):
    lost = make_file(media_root, "companions/1/generated/late.jpg")
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == ["companions/1/generated/late.jpg"]
    StoredImage.objects.create(
        companion=companion,
        kind="generated",
        file="companions/1/generated/late.jpg",
        width=1,
        height=1,
        byte_size=1,
        original_size=1,
    )
    assert orphans.delete_orphans(report) == 0
    assert lost.exists()


def test_the_periodic_task_reports_a_count_and_deletes_nothing(media_root, companion):
    from structlog.testing import capture_logs

    lost = make_file(media_root, "companions/1/generated/lost.jpg")
    with capture_logs() as logs:
        assert tasks.report_orphans.apply().get() == 1
    assert lost.exists()
    [line] = [entry for entry in logs if entry["event"] == "orphan_images"]
    assert line["count"] == 1 and line["log_level"] == "warning"


def test_many_files_are_checked_in_batches(media_root, companion, monkeypatch):
    monkeypatch.setattr(orphans, "BATCH", 3)
    for n in range(7):
        make_file(media_root, f"companions/1/generated/{n}.jpg")
    assert len(orphans.find_orphans().orphans) == 7
    assert orphans.delete_orphans(orphans.find_orphans()) == 7


def test_a_missing_media_root_is_nothing_to_report(settings, tmp_path, db):
    settings.MEDIA_ROOT = tmp_path / "nowhere"
    assert orphans.find_orphans().orphans == []


# --- spoken clips: chat registers them (media imports no chat) ------------------------------


def test_audio_files_are_known_through_the_owner_chat_registers():
    owner = orphans.owner_of("audio/12/0123abcd.wav")
    assert owner is not None and owner.label == "speech_clips"
    assert orphans.owner_of("companions/1/generated/a.jpg").label == "pictures"


def test_an_unreferenced_audio_file_is_swept_and_a_clips_file_is_not(media_root, companion):
    conversation = chat_of(companion)
    _, reply = add_exchange(conversation, companion, "Hi", "Hello there.")
    clip = add_clip(reply, 0)
    kept = media_root / clip.file.name
    then = time.time() - 2 * HOUR
    os.utime(kept, (then, then))
    lost = make_file(media_root, f"audio/{conversation.pk}/0123456789abcdef0123456789abcdef.mp3")
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == [lost.relative_to(media_root).as_posix()]
    assert report.scanned == 2 and report.foreign == 0
    out = run("--delete")
    assert "1 orphan file(s)" in out and "Deleted 1 file(s)." in out
    assert not lost.exists() and kept.exists()


@pytest.mark.parametrize(
    "name",
    [
        "audio/1/clip.flac",
        "audio/x/clip.wav",
        "audio/1/deeper/clip.wav",
        "audio/clip.wav",
        "elsewhere/audio/1/a.ogg",
    ],
)
def test_files_under_audio_in_no_clip_shape_are_foreign(media_root, companion, name):
    foreign = make_file(media_root, name)
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == [] and report.foreign == 1
    run("--delete", "--older-than-minutes", "0")
    assert foreign.exists()


def test_a_clip_row_created_after_the_scan_saves_its_file(media_root, companion):
    conversation = chat_of(companion)
    _, reply = add_exchange(conversation, companion, "Hi", "Hello there.")
    name = f"audio/{conversation.pk}/late.wav"
    lost = make_file(media_root, name)
    report = orphans.find_orphans(older_than_minutes=60)
    assert report.orphans == [name]
    SpeechClip.objects.create(
        message=reply, index=0, text="Hi.", file=name, content_type="audio/wav", duration_ms=1, chars=3
    )
    assert orphans.delete_orphans(report) == 0
    assert lost.exists()
