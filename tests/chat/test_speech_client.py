"""The speech client against the fake audio server, and what it accepts as audio."""

import pytest

from chat.backends import speech_backend
from chat.backends.env import connection_sync_from_env
from chat.models import Connection
from chat.speech import OPENAI_VOICES, OpenAISpeechClient, SpeechError, audio_info
from tests.fakes.audio_server import sine_wav


@pytest.fixture
def client(fake_audio):
    return OpenAISpeechClient(base_url=fake_audio.base_url, model="tts-1", timeout=(1.0, 2.0))


def test_it_sends_the_openai_request_and_gets_wav(client, fake_audio):
    audio = client.synthesize("Hello there, friend.", voice="af_sky", speed=1.25)
    [request] = fake_audio.speech_requests
    assert request["json"] == {
        "model": "tts-1",
        "input": "Hello there, friend.",
        "voice": "af_sky",
        "speed": 1.25,
        "response_format": "wav",
    }
    assert audio_info(audio).duration_ms == int(20 * 20 / 1.25)


def test_a_longer_text_gives_longer_audio(client):
    short = audio_info(client.synthesize("Hi there.")).duration_ms
    long = audio_info(client.synthesize("Hi there, this is a much longer sentence.")).duration_ms
    assert long > short > 0


def test_the_base_url_may_leave_out_v1(fake_audio):
    client = OpenAISpeechClient(base_url=fake_audio.origin)
    assert client.synthesize("Hello.")
    assert fake_audio.speech_requests[0]["path"] == "/v1/audio/speech"


def test_blank_voice_is_the_default_and_speed_is_clamped(fake_audio):
    client = OpenAISpeechClient(base_url=fake_audio.base_url, default_voice="am_adam")
    client.synthesize("Hello.", speed=9)
    assert fake_audio.speech_requests[0]["json"]["voice"] == "am_adam"
    assert fake_audio.speech_requests[0]["json"]["speed"] == 2.0


def test_nothing_to_say_is_refused_before_any_request(client, fake_audio):
    with pytest.raises(ValueError):
        client.synthesize("   ")
    assert fake_audio.speech_requests == []


@pytest.mark.parametrize(
    ("failure", "code", "retryable"),
    [
        ({"status": 500}, "server", True),
        ({"status": 401}, "auth", False),
        ({"status": 429}, "rate_limited", True),
        ({"status": 400}, "bad_request", False),
        ({"kind": "garbage"}, "bad_response", True),
        ({"kind": "disconnect"}, "connection", True),
    ],
)
def test_failures_have_clear_codes(client, fake_audio, failure, code, retryable):
    fake_audio.fail_next(**failure)
    with pytest.raises(SpeechError) as caught:
        client.synthesize("Hello.")
    assert caught.value.code == code and caught.value.retryable is retryable


def test_a_slow_server_times_out(fake_audio):
    fake_audio.delay = 1.0
    client = OpenAISpeechClient(base_url=fake_audio.base_url, timeout=(1.0, 0.2))
    with pytest.raises(SpeechError) as caught:
        client.synthesize("Hello.")
    assert caught.value.code == "timeout"


def test_too_much_audio_is_refused(fake_audio):
    client = OpenAISpeechClient(base_url=fake_audio.base_url, max_bytes=1000)
    with pytest.raises(SpeechError) as caught:
        client.synthesize("A sentence long enough to exceed a thousand bytes of audio.")
    assert caught.value.code == "bad_response"


def test_the_key_is_sent_as_a_bearer_token(fake_audio):
    fake_audio.api_key = "sekrit-key"
    assert OpenAISpeechClient(base_url=fake_audio.base_url, api_key="sekrit-key").synthesize("Hello.")
    with pytest.raises(SpeechError) as caught:
        OpenAISpeechClient(base_url=fake_audio.base_url, api_key="wrong").synthesize("Hello.")
    assert caught.value.code == "auth"


def test_voices_come_from_the_server_or_openai_names(client, fake_audio):
    assert client.voices() == ["af_bella", "af_sky", "am_adam"]
    fake_audio.voices = None
    assert client.voices() == list(OPENAI_VOICES)


@pytest.mark.parametrize(
    "data",
    [b"<html>oops</html>", b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b'{"error": 1}'],
)
def test_what_is_not_audio_is_refused(data):
    with pytest.raises(SpeechError) as caught:
        audio_info(data)
    assert caught.value.code == "bad_response"


def test_mp3_and_ogg_lengths_are_read():
    # One MPEG-1 Layer III frame header at 128 kbit/s, 44.1 kHz (417 bytes a frame), 38 frames ~ 1 s.
    frame = bytes([0xFF, 0xFB, 0x90, 0x00]) + bytes(413)
    assert 950 <= audio_info(frame * 38).duration_ms <= 1050
    page = b"OggS" + bytes(2) + (48000 * 2).to_bytes(8, "little") + bytes(20)
    assert audio_info(b"OggS" + bytes(40) + page).duration_ms == 2000
    assert audio_info(sine_wav(750)).content_type == "audio/wav"


@pytest.mark.django_db
def test_the_environment_seeds_the_audio_connection(use_fake_audio):
    connection_sync_from_env()
    row = Connection.objects.get(kind=Connection.Kind.AUDIO, from_env=True)
    assert (
        row.provider == "openai-audio" and row.default_voice == "af_bella" and row.api_key == "test-tts-key"
    )
    speech = speech_backend()
    assert speech is not None and speech.connection == row
    assert speech.client.synthesize("Hello there.")


@pytest.mark.django_db
def test_without_an_audio_back_end_there_is_no_voice(settings):
    settings.TTS_BASE_URL = ""
    assert speech_backend() is None


@pytest.mark.django_db
def test_the_key_is_scrubbed_from_errors(use_fake_audio):
    use_fake_audio.fail_next(status=400, body="bad key test-tts-key here")
    speech = speech_backend()
    with pytest.raises(SpeechError) as caught:
        speech.client.synthesize("Hello.")
    assert "test-tts-key" not in speech.scrub(caught.value).message
