"""chat/transcription.py against the fake audio server: the wire format, and every failure."""

from __future__ import annotations

import pytest

from chat.transcription import (
    TRANSCRIPTIONS_PATH,
    WHISPER_CPP_PATH,
    OpenAITranscriptionClient,
    TranscriptionError,
    endpoint_url,
)
from tests.media import audio_samples as samples


def client_for(fake, *, path: str = TRANSCRIPTIONS_PATH, **options) -> OpenAITranscriptionClient:
    return OpenAITranscriptionClient(base_url=fake.origin, api_key="sk-secret", path=path, **options)


def test_it_posts_the_recording_as_openai_multipart_and_returns_the_text(fake_audio):
    fake_audio.transcript = "  Guten Morgen!  "
    audio = samples.webm(1)
    text = client_for(fake_audio, model="whisper-large").transcribe(
        audio, content_type="audio/webm", language="de"
    )
    assert text == "Guten Morgen!"
    (request,) = fake_audio.transcriptions
    assert request["path"] == "/v1/audio/transcriptions"
    assert request["headers"]["authorization"] == "Bearer sk-secret"
    assert request["fields"] == {"model": "whisper-large", "response_format": "json", "language": "de"}
    assert request["file"] == {"filename": "recording.webm", "content_type": "audio/webm", "data": audio}


def test_without_a_language_none_is_sent(fake_audio):
    client_for(fake_audio).transcribe(samples.wav(0.2), content_type="audio/wav", language=None)
    (request,) = fake_audio.transcriptions
    assert "language" not in request["fields"]
    assert request["file"]["filename"] == "recording.wav"


def test_whisper_cpp_is_asked_at_inference(fake_audio):
    client_for(fake_audio, path=WHISPER_CPP_PATH).transcribe(b"x", content_type="audio/ogg", language="es")
    (request,) = fake_audio.transcriptions
    assert request["path"] == "/inference"
    assert request["fields"]["language"] == "es"


def test_a_base_url_with_or_without_v1_reaches_the_same_address():
    assert endpoint_url("http://h:1", TRANSCRIPTIONS_PATH) == "http://h:1/v1/audio/transcriptions"
    assert endpoint_url("http://h:1/v1/", TRANSCRIPTIONS_PATH) == "http://h:1/v1/audio/transcriptions"
    assert endpoint_url("http://h:1/", WHISPER_CPP_PATH) == "http://h:1/inference"


def test_no_key_sends_no_authorization(fake_audio):
    OpenAITranscriptionClient(base_url=fake_audio.origin).transcribe(b"x", content_type="audio/ogg")
    assert "authorization" not in fake_audio.transcriptions[0]["headers"]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(401, "auth", False), (403, "auth", False), (400, "bad_request", False), (413, "bad_request", False),
     (429, "rate_limited", True), (500, "server", True), (503, "server", True)],
)  # fmt: skip
def test_error_statuses_have_clear_codes(fake_audio, status, code, retryable):
    fake_audio.fail_next(status=status)
    with pytest.raises(TranscriptionError) as caught:
        client_for(fake_audio).transcribe(b"x", content_type="audio/ogg")
    assert (caught.value.code, caught.value.retryable, caught.value.status) == (code, retryable, status)
    assert f"HTTP {status}" in caught.value.message


def test_a_server_that_does_not_answer_in_time_is_a_timeout(fake_audio):
    fake_audio.fail_next(kind="hang", seconds=5)
    client = client_for(fake_audio, read_timeout=0.2)
    with pytest.raises(TranscriptionError) as caught:
        client.transcribe(b"x", content_type="audio/ogg")
    assert caught.value.code == "timeout" and caught.value.retryable


def test_an_unreachable_server_is_a_connection_error_without_its_address(fake_audio):
    client = client_for(fake_audio)
    fake_audio.stop()
    with pytest.raises(TranscriptionError) as caught:
        client.transcribe(b"x", content_type="audio/ogg")
    assert caught.value.code == "connection"
    assert "127.0.0.1" not in str(caught.value)


def test_a_dropped_connection_is_a_connection_error(fake_audio):
    fake_audio.fail_next(kind="disconnect")
    with pytest.raises(TranscriptionError) as caught:
        client_for(fake_audio).transcribe(b"x", content_type="audio/ogg")
    assert caught.value.code == "connection"


@pytest.mark.parametrize("kind", ["garbage", "no_text"])
def test_an_answer_without_text_is_a_bad_response(fake_audio, kind):
    fake_audio.fail_next(kind=kind)
    with pytest.raises(TranscriptionError) as caught:
        client_for(fake_audio).transcribe(b"x", content_type="audio/ogg")
    assert caught.value.code == "bad_response"


def test_a_very_long_transcript_is_cut(fake_audio, monkeypatch):
    monkeypatch.setattr("chat.transcription.MAX_TRANSCRIPT_CHARS", 10)
    fake_audio.transcript = "word " * 50
    assert len(client_for(fake_audio).transcribe(b"x", content_type="audio/ogg")) == 10


def test_the_client_never_shows_its_key():
    client = OpenAITranscriptionClient(base_url="http://h", api_key="sk-secret")
    assert "sk-secret" not in repr(client)
