"""A reply whose text changes without being spoken again loses its clips: they say the old words.

Correcting it in place, showing another of its versions or changing it in the
admin deletes its ``SpeechClip`` rows, and their files once the transaction
commits (a rolled-back change keeps both). Other messages' clips stay, and so
do a reply's clips when something other than its text changes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.admin.sites import site
from django.db import transaction
from django.test import RequestFactory

from chat import editing
from chat.models import Message, SpeechClip
from tests.chat.factories import add_clip, add_exchange, chat_of


@pytest.fixture
def spoken(companion):
    """A chat with two spoken replies (the first with two versions); the chat, both replies and
    each reply's clips."""
    conversation = chat_of(companion)
    _, first = add_exchange(conversation, companion, "Hello", "Hi! Nice to see you.", alternatives=["Hey."])
    _, second = add_exchange(conversation, companion, "Beach?", "Sure. Let's go.")
    clips = {reply.pk: [add_clip(reply, 0), add_clip(reply, 1, extension="mp3")] for reply in (first, second)}
    return conversation, first, second, clips


def files_of(media_root, clips) -> list[Path]:
    return [Path(media_root) / clip.file.name for clip in clips]


@pytest.mark.django_db
def test_correcting_a_reply_drops_its_clips_and_their_files_after_commit(
    user, spoken, media_root, django_capture_on_commit_callbacks
):
    conversation, first, second, clips = spoken
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        editing.message_edit(user=user, conversation=conversation, text="Hello again.", message_id=first.pk)
    assert not SpeechClip.objects.filter(message=first).exists()
    assert all(f.exists() for f in files_of(media_root, clips[first.pk]))  # not before the commit
    for callback in callbacks:
        callback()
    assert not any(f.exists() for f in files_of(media_root, clips[first.pk]))
    assert SpeechClip.objects.filter(message=second).count() == 2  # another reply keeps its voice
    assert all(f.exists() for f in files_of(media_root, clips[second.pk]))


@pytest.mark.django_db
def test_showing_another_version_drops_the_clips_of_the_one_shown_before(
    user, spoken, media_root, django_capture_on_commit_callbacks
):
    conversation, first, second, clips = spoken
    with django_capture_on_commit_callbacks(execute=True):
        shown = editing.message_show_alternative(user=user, conversation=conversation, message_id=first.pk)
    assert shown.content == "Hey."
    assert not SpeechClip.objects.filter(message=first).exists()
    assert not any(f.exists() for f in files_of(media_root, clips[first.pk]))
    assert SpeechClip.objects.filter(message=second).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_correction_rolled_back_keeps_the_clips_and_their_files(user, spoken, media_root):
    conversation, first, _, clips = spoken
    with pytest.raises(RuntimeError), transaction.atomic():
        editing.message_edit(user=user, conversation=conversation, text="Never mind.", message_id=first.pk)
        raise RuntimeError("rolled back")
    assert SpeechClip.objects.filter(message=first).count() == 2
    assert all(f.exists() for f in files_of(media_root, clips[first.pk]))
    assert Message.objects.get(pk=first.pk).content == "Hi! Nice to see you."


@pytest.mark.django_db
@pytest.mark.parametrize(("changed", "kept"), [(["content"], 0), (["is_complete"], 2)])
def test_an_admin_change_of_a_replys_text_drops_its_clips(
    staff_user, spoken, media_root, changed, kept, django_capture_on_commit_callbacks
):
    _, first, _, clips = spoken
    admin = site._registry[Message]
    request = RequestFactory().post("/")
    request.user = staff_user
    first.content = "Moderated."
    with django_capture_on_commit_callbacks(execute=True):
        admin.save_model(request, first, SimpleNamespace(changed_data=changed), change=True)
    assert SpeechClip.objects.filter(message=first).count() == kept
    assert sum(f.exists() for f in files_of(media_root, clips[first.pk])) == kept
