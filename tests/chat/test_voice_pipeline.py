"""Voice end to end: websocket -> reply step -> one chat.speak per sentence on the voice queue.

Real worker, real broker, the fake LLM and the fake audio server. Ordering is
checked through held streams and the order of events, never wall-clock time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from celery.signals import task_prerun
from django.test import Client
from django.urls import reverse

from accounts import tokens
from accounts.models import UsageTransaction
from chat.models import Message, PipelineRun, SpeechClip
from chat.speech import audio_info
from companionhub import ratelimits
from companions.models import Companion

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = (
    "Hello there, my friend. It is good to see you again! *smiles* "
    "How was your day today? Tell me everything."
)
SENTENCES = [
    "Hello there, my friend.",
    "It is good to see you again!",
    "How was your day today?",
    "Tell me everything.",
]


@pytest.fixture
def voiced(companion):
    Companion.objects.filter(pk=companion.pk).update(
        config={**companion.config, "voice_enabled": True, "voice": "af_sky", "voice_speed": 1.0}
    )
    return companion


@pytest.fixture
def queues():
    seen: dict[str, str] = {}

    def prerun(sender=None, task=None, **kwargs):
        seen[task.name] = (task.request.delivery_info or {}).get("routing_key")

    task_prerun.connect(prerun, weak=False)
    yield seen
    task_prerun.disconnect(prerun)


async def wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while not await sync_to_async(predicate)():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def until_done(client):
    """Read to the reply's ``done``; an ``audio_failed`` note on the way is expected here."""
    while True:
        event = await client.receive_until("done", "error")
        if event["type"] == "done":
            return event
        assert event["code"] == "audio_failed", event


async def read_all(client, until):
    while not until():
        await client.receive()


def clips_of(message_id):
    return list(SpeechClip.objects.filter(message_id=message_id).order_by("index"))


async def test_sentences_are_spoken_while_the_reply_streams(
    worker, use_fake_llm, use_fake_audio, connect, voiced, user, queues
):
    use_fake_llm.set_reply(REPLY)
    use_fake_llm.hold_after(12)  # two sentences written, the rest held back
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v1"})
    # The first sentence reaches the audio server while the LLM's stream is still held.
    await wait_for(lambda: len(use_fake_audio.speech_requests) >= 1)
    assert not use_fake_llm.streams[-1]["finished"]
    use_fake_llm.release()
    await read_all(client, lambda: len(client.of_type("audio")) == len(SENTENCES) and client.of_type("done"))
    # Asked for in order; with several voice threads they may reach the server side by side.
    assert sorted(r["json"]["input"] for r in use_fake_audio.speech_requests) == sorted(SENTENCES)
    assert all(r["json"]["voice"] == "af_sky" for r in use_fake_audio.speech_requests)
    assert queues["chat.speak"] == "voice"
    audio = sorted(client.of_type("audio"), key=lambda e: e["index"])
    assert [e["index"] for e in audio] == [0, 1, 2, 3]
    assert [e["last"] for e in audio] == [False, False, False, True]
    done = client.of_type("done")[0]
    assert {e["message_id"] for e in audio} == {done["message_id"]}
    assert all(e["run_id"] == done["run_id"] and e["sender"] == voiced.name for e in audio)
    clips = await sync_to_async(clips_of)(done["message_id"])
    assert [c.text for c in clips] == SENTENCES
    assert [c.url for c in clips] == [e["url"] for e in audio]
    assert all(c.duration_ms == len(c.text) * 20 and c.content_type == "audio/wav" for c in clips)
    charged = await sync_to_async(
        lambda: list(
            UsageTransaction.objects.filter(run_status="voice").values_list("speech_chars", flat=True)
        )
    )()
    assert sorted(charged) == sorted(len(s) for s in SENTENCES)


async def test_a_slow_voice_does_not_hold_up_the_tokens(
    worker, use_fake_llm, use_fake_audio, connect, voiced, user
):
    use_fake_audio.delay = 3.0
    use_fake_llm.set_reply(REPLY)
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v2"})
    await read_all(client, lambda: len(client.of_type("audio")) == len(SENTENCES))
    # Every token came before any clip was ready: the stream never waited for the voice.
    kinds = [e["type"] for e in client.events]
    last_token = max(i for i, kind in enumerate(kinds) if kind == "token")
    assert last_token < kinds.index("audio")
    assert len(use_fake_audio.speech_requests) == len(SENTENCES)


async def test_a_failing_voice_gives_one_note_and_the_reply_completes(
    worker, use_fake_llm, use_fake_audio, connect, voiced, user
):
    use_fake_audio.fail_next(status=500, times=10)
    use_fake_llm.set_reply(REPLY)
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v3"})
    await until_done(client)
    await wait_for(lambda: len(use_fake_audio.speech_requests) >= 1)
    await asyncio.sleep(1.0)
    while not await client.nothing_more():
        await client.receive()
    notes = [e for e in client.of_type("error") if e["code"] == "audio_failed"]
    assert len(notes) == 1
    done = client.of_type("done")[0]
    assert notes[0]["message_id"] == done["message_id"] and notes[0]["run_id"] == done["run_id"]
    assert notes[0]["message"] == "Voice is unavailable right now; the reply is text only."
    run = await sync_to_async(PipelineRun.objects.get)(pk=done["run_id"])
    assert run.status == "completed"
    assert await sync_to_async(SpeechClip.objects.count)() == 0


async def test_without_an_audio_back_end_the_reply_says_so_once(
    worker, use_fake_llm, connect, voiced, user, settings
):
    settings.TTS_BASE_URL = ""
    use_fake_llm.set_reply(REPLY)
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v4"})
    await until_done(client)
    assert [e["code"] for e in client.of_type("error")] == ["audio_failed"]


async def test_cancel_stops_pending_synthesis(worker, use_fake_llm, use_fake_audio, connect, voiced, user):
    use_fake_audio.delay = 0.3
    use_fake_llm.set_reply(" ".join(f"Sentence number {i} is here." for i in range(30)))
    use_fake_llm.token_delay = 0.01
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v5"})
    accepted = await client.receive_until("message.accepted")
    await wait_for(lambda: len(use_fake_audio.speech_requests) >= 1)
    await client.send({"type": "run.cancel", "run_id": accepted["run_id"]})
    await client.receive_until("error")
    cancelled_at = len(use_fake_audio.speech_requests)
    await asyncio.sleep(1.5)
    # At most the sentences already being spoken finish; none is kept after the cancel.
    assert len(use_fake_audio.speech_requests) <= cancelled_at + 4
    assert await sync_to_async(SpeechClip.objects.filter(run_id=accepted["run_id"]).count)() <= 1


async def test_no_voice_when_the_user_reads_nothing_aloud(
    worker, use_fake_llm, use_fake_audio, connect, voiced, user
):
    await sync_to_async(type(user).objects.filter(pk=user.pk).update)(read_aloud=False)
    use_fake_llm.set_reply(REPLY)
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v6"})
    await client.receive_until("done")
    await asyncio.sleep(0.5)
    assert use_fake_audio.speech_requests == []


async def test_the_voice_rate_limit_silences_the_rest(
    worker, use_fake_llm, use_fake_audio, connect, voiced, user, settings
):
    settings.RATELIMIT_ENABLE = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "voice": "2/1h"}
    await sync_to_async(ratelimits.clear)("voice", f"user:{user.pk}")
    use_fake_llm.set_reply(REPLY)
    client = await connect(voiced.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi!", "client_id": "v7"})
    await until_done(client)
    await read_all(client, lambda: [e for e in client.of_type("error") if e["code"] == "audio_failed"])
    await asyncio.sleep(0.5)
    assert len(use_fake_audio.speech_requests) == 2


# --- HTTP: serving, replay, speaking on demand, deletion -----------------------------------------


def _reply(user, companion, text=REPLY):
    from chat.models import Conversation, Participant

    conversation = Conversation.objects.create(owner=user, kind="direct")
    Participant.objects.create(conversation=conversation, companion=companion, position=0)
    return Message.objects.create(conversation=conversation, role="assistant", sender=companion, content=text)


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_speaking_on_demand_then_replaying(worker, use_fake_audio, voiced, user, other_user, media_root):
    message = _reply(user, voiced)
    owner = _client(user)
    speak = reverse("chat:message_speak", args=[message.conversation_id, message.pk])
    audio = reverse("chat:message_audio", args=[message.conversation_id, message.pk])
    assert _client(other_user).post(speak).status_code == 404
    assert owner.get(speak).status_code == 405
    answer = owner.post(speak)
    assert answer.status_code == 202 and answer.json() == {"queued": 4}
    deadline = time.monotonic() + 15
    while SpeechClip.objects.filter(message=message).count() < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    clips = owner.get(audio).json()["clips"]
    assert [c["index"] for c in clips] == [0, 1, 2, 3] and all(c["duration_ms"] > 0 for c in clips)
    assert owner.post(speak).json() == {"clips": [c["url"] for c in clips]}
    assert _client(other_user).get(audio).status_code == 404
    # The clip itself: its owner hears it, nobody else does.
    response = owner.get(clips[0]["url"])
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    assert response["Cache-Control"].startswith("private") and response["X-Content-Type-Options"] == "nosniff"
    assert audio_info(b"".join(response.streaming_content)).duration_ms > 0
    assert _client(other_user).get(clips[0]["url"]).status_code == 404
    # A program on its owner's API token fetches it too (the reference client's --save-audio).
    _, mine = tokens.token_create(user=user, name="client")
    _, theirs = tokens.token_create(user=other_user, name="other")
    by_token = Client().get(clips[0]["url"], headers={"Authorization": f"Bearer {mine}"})
    assert by_token.status_code == 200 and by_token["Content-Type"] == "audio/wav"
    assert Client().get(clips[0]["url"], headers={"Authorization": f"Bearer {theirs}"}).status_code == 404
    forged = {"Authorization": "Bearer chk_not-a-token"}
    assert Client().get(clips[0]["url"], headers=forged).status_code == 302
    assert Client().get(clips[0]["url"]).status_code == 302  # to the sign-in page
    # Deleting the reply deletes its clips' files.
    files = [Path(media_root) / c.file.name for c in SpeechClip.objects.filter(message=message)]
    assert all(f.exists() for f in files)
    message.delete()
    assert not any(f.exists() for f in files) and SpeechClip.objects.count() == 0


def test_the_clip_files_go_with_the_account(worker, use_fake_audio, voiced, user, media_root):
    from accounts.services import user_delete

    message = _reply(user, voiced, "Just one sentence to say.")
    assert (
        _client(user)
        .post(reverse("chat:message_speak", args=[message.conversation_id, message.pk]))
        .status_code
        == 202
    )
    deadline = time.monotonic() + 15
    while not SpeechClip.objects.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    path = Path(media_root) / SpeechClip.objects.get().file.name
    assert path.exists()
    user_delete(user=user)
    assert not path.exists() and not SpeechClip.objects.exists()


def test_a_reply_still_being_written_is_not_spoken_on_demand(use_fake_audio, voiced, user, db):
    message = _reply(user, voiced)
    Message.objects.filter(pk=message.pk).update(is_complete=False)
    answer = _client(user).post(reverse("chat:message_speak", args=[message.conversation_id, message.pk]))
    assert answer.status_code == 409


def test_on_demand_without_an_audio_back_end(voiced, user, settings, db):
    settings.TTS_BASE_URL = ""
    message = _reply(user, voiced)
    answer = _client(user).post(reverse("chat:message_speak", args=[message.conversation_id, message.pk]))
    assert answer.status_code == 503 and answer.json()["error"] == "voice_unavailable"
