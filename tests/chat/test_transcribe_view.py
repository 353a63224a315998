"""POST /chat/transcribe/: push-to-talk's recording in, its text out, and every refusal as JSON."""

from __future__ import annotations

import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import UsageTransaction
from chat.backend_models import Connection
from chat.backends import breaker_for, reset_backends
from tests.chat.factories import make_chat, make_group
from tests.companions.factories import make_companion
from tests.media import audio_samples as samples

URL = reverse("chat:transcribe")


def post(client, data: bytes | None, *, name: str = "clip.webm", content_type: str = "audio/webm", **fields):
    payload = dict(fields)
    if data is not None:
        payload["audio"] = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(URL, payload)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _nothing_written_to_disk(monkeypatch, settings, tmp_path):
    """Every test here also proves the recording never reaches a temporary file: Django's own
    handlers would write anything over one byte to one."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")

    def refuse(*args, **kwargs):
        raise AssertionError("the recording was written to a temporary file")

    monkeypatch.setattr("django.core.files.uploadhandler.TemporaryUploadedFile", refuse)


@pytest.fixture(autouse=True)
def _breakers_closed_after(db):
    """A breaker's state lives in the cache, keyed by the connection's id, which the next test's
    row may reuse: close every audio breaker this test opened."""
    yield
    for connection in Connection.objects.filter(kind=Connection.Kind.TRANSCRIPTION):
        breaker_for(connection, connection.kind).reset()


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_it_works(signed_in, user, use_fake_audio, media_root):
    use_fake_audio.transcript = "Let's go to the beach."
    response = post(signed_in, samples.webm(2.5))
    assert response.status_code == 200
    assert response.json() == {"text": "Let's go to the beach."}
    (request,) = use_fake_audio.transcriptions
    assert request["file"]["content_type"] == "audio/webm"
    assert request["fields"]["language"] == "en"  # the user's
    assert files_under(media_root) == []


def test_the_sniffed_type_is_sent_not_the_browsers(signed_in, use_fake_audio):
    response = post(signed_in, samples.wav(1), name="clip.webm", content_type="audio/webm")
    assert response.status_code == 200
    assert use_fake_audio.transcriptions[0]["file"]["filename"] == "recording.wav"
    assert use_fake_audio.transcriptions[0]["file"]["content_type"] == "audio/wav"


def test_the_users_language_is_passed(signed_in, user, use_fake_audio):
    user.language = "de"
    user.save(update_fields=["language"])
    post(signed_in, samples.wav(0.5))
    assert use_fake_audio.transcriptions[0]["fields"]["language"] == "de"


def test_a_chat_with_a_companion_of_another_language_is_heard_in_it(signed_in, user, use_fake_audio):
    conversation = make_chat(make_companion(user, reply_language="es"))
    assert post(signed_in, samples.wav(0.5), conversation_id=conversation.pk).status_code == 200
    assert use_fake_audio.transcriptions[0]["fields"]["language"] == "es"


def test_a_group_is_heard_in_the_users_language(signed_in, user, use_fake_audio):
    group = make_group(user)
    assert post(signed_in, samples.wav(0.5), conversation_id=group.pk).status_code == 200
    assert use_fake_audio.transcriptions[0]["fields"]["language"] == "en"


def test_it_checks_the_owner_of_the_conversation(signed_in, other_user, use_fake_audio):
    theirs = make_chat(make_companion(other_user))
    response = post(signed_in, samples.wav(0.5), conversation_id=theirs.pk)
    assert response.status_code == 404
    assert "error" in response.json()
    assert use_fake_audio.transcriptions == []


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 30])
def test_a_bad_conversation_id_is_refused(signed_in, use_fake_audio, value):
    response = post(signed_in, samples.wav(0.5), conversation_id=value)
    assert response.status_code == 400
    assert use_fake_audio.transcriptions == []


def test_it_needs_a_sign_in(client, use_fake_audio):
    response = post(client, samples.wav(0.5))
    assert response.status_code == 302 and "login" in response["Location"]
    assert use_fake_audio.transcriptions == []


def test_it_rejects_get(signed_in):
    assert signed_in.get(URL).status_code == 405


def test_it_needs_the_csrf_token(user, use_fake_audio):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert post(strict, samples.wav(0.5)).status_code == 403
    assert use_fake_audio.transcriptions == []


def test_the_csrf_token_in_a_header_is_enough(user, use_fake_audio):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    strict.get(reverse("accounts:profile"))  # a page with a form: sets the CSRF cookie
    token = strict.cookies["csrftoken"].value
    response = strict.post(
        URL, {"audio": SimpleUploadedFile("c.wav", samples.wav(0.5))}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200


def test_a_request_without_the_file_is_refused(signed_in, use_fake_audio):
    response = post(signed_in, None)
    assert response.status_code == 400
    assert "audio" in response.json()["error"]


def test_a_png_renamed_webm_is_refused_and_never_sent(signed_in, use_fake_audio, media_root):
    response = post(signed_in, samples.png(), name="clip.webm", content_type="audio/webm")
    assert response.status_code == 415
    assert "not a recording" in response.json()["error"]
    assert use_fake_audio.transcriptions == []
    assert files_under(media_root) == []


def test_an_empty_recording_is_refused(signed_in, use_fake_audio):
    response = post(signed_in, b"")
    assert response.status_code == 400
    assert response.json() == {"error": "The recording is empty."}


def test_a_damaged_recording_is_refused(signed_in, use_fake_audio):
    assert post(signed_in, samples.wav(1)[:20]).status_code == 400
    assert use_fake_audio.transcriptions == []


def test_an_overlong_recording_is_refused(signed_in, settings, use_fake_audio):
    settings.VOICE_UPLOAD_MAX_SECONDS = 2
    response = post(signed_in, samples.ogg_opus(3))
    assert response.status_code == 413
    assert response.json() == {"error": "The recording is longer than 2 seconds."}
    assert use_fake_audio.transcriptions == []


def test_a_recording_over_the_byte_limit_is_refused_while_it_arrives(signed_in, settings, use_fake_audio):
    """Within the body rule's allowance for the form, but over the file's own limit."""
    settings.VOICE_UPLOAD_MAX_BYTES = 10_000
    response = post(signed_in, samples.wav(1))  # 32 kB
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    assert use_fake_audio.transcriptions == []


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(signed_in, settings, use_fake_audio):
    settings.VOICE_UPLOAD_MAX_BYTES = 1024
    response = post(signed_in, b"\0" * (400 * 1024))
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "voice recordings can be at most" in response.json()["error"]


def test_it_is_rate_limited(signed_in, rate_limits, use_fake_audio):
    for _ in range(2):
        assert post(signed_in, samples.wav(0.5)).status_code == 200
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 429
    assert "Too many attempts" in response.json()["error"]
    assert int(response["Retry-After"]) > 0
    assert len(use_fake_audio.transcriptions) == 2


def test_without_a_back_end_it_says_what_is_missing(signed_in, settings):
    settings.STT_BASE_URL = ""
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 503
    assert response.json()["error"].startswith("Speech to text needs a back end")


def test_the_refusal_is_in_the_users_language(signed_in, user, settings):
    settings.STT_BASE_URL = ""
    user.language = "de"
    user.save(update_fields=["language"])
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 503
    assert response.json()["error"].startswith("Sprache zu Text")


def test_a_connection_that_only_speaks_is_not_asked(signed_in, settings, use_fake_audio):
    settings.STT_BASE_URL = ""  # the speech connection (TTS_*) stays: it is not a transcriber
    reset_backends()
    assert post(signed_in, samples.wav(0.5)).status_code == 503
    assert use_fake_audio.transcriptions == []


def test_a_failing_back_end_is_a_503_and_rests_after_repeated_failures(signed_in, settings, use_fake_audio):
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    use_fake_audio.fail_next(status=500, times=2)
    for _ in range(2):
        response = post(signed_in, samples.wav(0.5))
        assert response.status_code == 503
        assert "not available right now" in response.json()["error"]
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 503
    assert "resting" in response.json()["error"]
    assert len(use_fake_audio.transcriptions) == 2  # the third was never sent


def test_a_back_end_that_echoes_the_key_never_shows_it(signed_in, use_fake_audio):
    use_fake_audio.fail_next(status=401, body={"error": {"message": "Bad key test-stt-key"}})
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 503
    assert "test-stt-key" not in response.content.decode()


def test_a_slow_back_end_is_a_timeout(signed_in, settings, use_fake_audio):
    settings.STT_TIMEOUT = 0.2
    use_fake_audio.fail_next(kind="hang", seconds=5)
    response = post(signed_in, samples.wav(0.5))
    assert response.status_code == 503
    assert "did not answer in time" in response.json()["error"]


def test_the_transcription_is_charged_to_the_user(signed_in, user, use_fake_audio):
    companion = make_companion(user, name="Mira")
    conversation = make_chat(companion)
    use_fake_audio.transcript = "x" * 40
    assert post(signed_in, samples.ogg_opus(7.2), conversation_id=conversation.pk).status_code == 200
    row = UsageTransaction.objects.get(user=user)
    assert row.run_status == "transcribe"
    assert row.prompt_tokens == math.ceil(7.2)  # a second of audio, one unit
    assert row.completion_tokens == 10  # the transcript's estimated tokens
    assert (row.companion_id, row.companion_name) == (companion.pk, "Mira")
    assert row.served_by == "Environment speech to text / whisper-1"


def test_a_refused_upload_is_not_charged(signed_in, user, use_fake_audio):
    post(signed_in, samples.png())
    use_fake_audio.fail_next(status=500)
    post(signed_in, samples.wav(0.5))
    assert not UsageTransaction.objects.filter(user=user).exists()


def test_whisper_cpp_from_the_environment_is_asked_at_inference(signed_in, settings, use_fake_audio):
    settings.STT_PROVIDER = "whisper-cpp"
    assert post(signed_in, samples.wav(0.5)).status_code == 200
    assert use_fake_audio.transcriptions[0]["path"] == "/inference"
    row = Connection.objects.get(kind=Connection.Kind.TRANSCRIPTION, from_env=True)
    assert (row.provider, row.default_model, row.api_key) == ("whisper-cpp", "whisper-1", "test-stt-key")


def test_an_admin_connection_is_used_when_the_environment_sets_none(signed_in, settings, fake_audio):
    settings.STT_BASE_URL = ""
    connection = Connection(
        name="Speaches",
        kind=Connection.Kind.TRANSCRIPTION,
        provider="openai-audio",
        base_url=fake_audio.base_url,
    )
    connection.set_api_key("")
    connection.save()
    assert post(signed_in, samples.wav(0.5)).json() == {"text": fake_audio.transcript}
    assert fake_audio.transcriptions[0]["path"] == "/v1/audio/transcriptions"
