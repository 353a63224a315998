"""Pytest fixtures that start the local fake back-end servers.

- ``fake_llm`` / ``fake_sd``: a running ``FakeLLMServer`` / ``FakeSDServer``
  on a random local port, stopped after the test;
- ``use_fake_llm`` / ``use_fake_sd``: the same, with the settings pointing the
  app's back ends at it (and the cached back-end clients forgotten);
- ``fake_audio`` / ``use_fake_audio``: a ``FakeAudioServer`` (speech and speech to text), and
  the same with ``TTS_*`` and ``STT_*`` pointing both connections at it (WAV, a short timeout,
  the breakers reset);
- every test starts and ends with the back-end memo forgotten (autouse).
"""

from __future__ import annotations

import importlib

import pytest

from tests.fakes.audio_server import FakeAudioServer
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.sd_server import FakeSDServer


def _reset_backends() -> None:
    """Forget cached back-end clients, if the app has that hook (it may not exist yet)."""
    try:
        backends = importlib.import_module("chat.backends")
    except ImportError:
        return
    reset = getattr(backends, "reset_backends", None)
    if callable(reset):
        reset()


@pytest.fixture(autouse=True)
def _forget_backends_between_tests():
    """Each process memoises the default connection for a few seconds (``chat.backends``): a row a
    test created and rolled back must not serve the next test."""
    _reset_backends()
    yield
    _reset_backends()


@pytest.fixture
def fake_llm():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_sd():
    with FakeSDServer() as server:
        yield server


@pytest.fixture
def use_fake_llm(fake_llm, settings):
    settings.LLM_BASE_URL = fake_llm.base_url
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MODEL = "fake-model"
    _reset_backends()
    yield fake_llm
    _reset_backends()


@pytest.fixture
def use_fake_sd(fake_sd, settings):
    settings.SD_API_URL = fake_sd.base_url
    _reset_backends()
    yield fake_sd
    _reset_backends()


@pytest.fixture
def fake_comfyui():
    from tests.fakes.comfyui_server import FakeComfyUIServer

    with FakeComfyUIServer() as server:
        yield server


@pytest.fixture
def fake_audio():
    with FakeAudioServer() as server:
        yield server


@pytest.fixture
def use_fake_audio(fake_audio, settings):
    settings.TTS_BASE_URL = fake_audio.base_url
    settings.TTS_API_KEY = "test-tts-key"
    settings.TTS_MODEL = "tts-1"
    settings.TTS_VOICE = "af_bella"
    settings.TTS_FORMAT = "wav"
    settings.TTS_TIMEOUT = 5.0
    fake_audio.api_key = "test-tts-key"
    settings.STT_BASE_URL = fake_audio.origin  # whisper.cpp's /inference is at the root
    settings.STT_API_KEY = "test-stt-key"
    settings.STT_MODEL = "whisper-1"
    settings.STT_PROVIDER = "openai-audio"
    _reset_backends()
    _reset_audio_breakers()
    yield fake_audio
    _reset_audio_breakers()
    _reset_backends()


def _reset_audio_breakers() -> None:
    backends = importlib.import_module("chat.backends")
    for choice in (backends.speech_backend(), backends.transcription_choice()):
        if choice is not None:
            choice.breaker.reset()
