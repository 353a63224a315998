"""Text to speech over the OpenAI-compatible audio API, and what we check of the audio it sends.

``POST {base}/v1/audio/speech`` with ``{"model", "input", "voice", "speed",
"response_format"}`` answers with the audio's bytes. OpenAI, Kokoro-FastAPI,
openedai-speech, LocalAI and the local engine of ``make local-voice`` speak it.
A base URL may be given with or without its ``/v1``.

The voices: Kokoro-FastAPI lists its own at ``GET {base}/v1/audio/voices``
(``{"voices": [...]}``); servers without that list (OpenAI, openedai-speech)
take OpenAI's six names, which is what ``voices()`` falls back to.

Nothing the server sends is trusted: ``audio_info`` sniffs the bytes (WAV,
MP3 or Ogg), refuses anything else (an HTML error page with status 200 is
never stored as a clip) and measures the duration. Every failure is a
``SpeechError`` with a code; its text never holds the key (``chat.backends``
scrubs it as the LLM's).
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from typing import Any

import requests

__all__ = [
    "FORMATS",
    "OPENAI_VOICES",
    "AudioInfo",
    "OpenAISpeechClient",
    "SpeechError",
    "audio_info",
]

OPENAI_VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
FORMATS = ("wav", "mp3", "opus")
SPEED_LIMITS = (0.5, 2.0)  # what the companion settings allow (OpenAI takes 0.25-4.0)
VOICE_NAME_MAX = 100
VOICES_MAX = 500  # a server's list is cut here: it fills a select, not a database


class SpeechError(Exception):
    """A failed synthesis. ``code``: auth, bad_request, rate_limited, server, timeout, connection,
    bad_response (not audio, or too big); ``retryable`` whether trying again may help."""

    def __init__(self, code: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True, slots=True)
class AudioInfo:
    content_type: str
    extension: str
    duration_ms: int


def _api_root(base_url: str) -> str:
    """``http://host:8880`` and ``http://host:8880/v1`` both mean the same server."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _error_for_status(response: requests.Response) -> SpeechError:
    status = response.status_code
    detail = response.text[:200]
    if status in (401, 403):
        return SpeechError("auth", f"HTTP {status}: {detail}", retryable=False, status=status)
    if status == 429:
        return SpeechError("rate_limited", f"HTTP {status}: {detail}", retryable=True, status=status)
    if status >= 500 or status == 408:
        return SpeechError("server", f"HTTP {status}: {detail}", retryable=True, status=status)
    return SpeechError("bad_request", f"HTTP {status}: {detail}", retryable=False, status=status)


class OpenAISpeechClient:
    """One audio connection's speech client (one ``requests.Session`` per thread, as the others)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        model: str = "tts-1",
        default_voice: str = "alloy",
        response_format: str = "wav",
        timeout: tuple[float, float] = (5.0, 20.0),
        max_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if response_format not in FORMATS:
            raise ValueError(f"response_format must be one of {FORMATS}")
        self.root = _api_root(base_url)
        self.model = model or "tts-1"
        self.default_voice = default_voice or OPENAI_VOICES[0]
        self.response_format = response_format
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "CompanionHub"})
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def synthesize(self, text: str, *, voice: str = "", speed: float = 1.0) -> bytes:
        """The audio of ``text`` (checked to be audio and within ``max_bytes``)."""
        if not text.strip():
            raise ValueError("nothing to synthesise")
        body: dict[str, Any] = {
            "model": self.model,
            "input": text,
            "voice": (voice or self.default_voice)[:VOICE_NAME_MAX],
            "speed": min(max(float(speed), SPEED_LIMITS[0]), SPEED_LIMITS[1]),
            "response_format": self.response_format,
        }
        try:
            response = self.session.post(
                f"{self.root}/v1/audio/speech", json=body, timeout=self.timeout, stream=True
            )
        except requests.Timeout as exc:
            raise SpeechError("timeout", "The voice service did not answer in time.", retryable=True) from exc
        except requests.RequestException as exc:
            raise SpeechError(
                "connection", f"Could not reach the voice service ({type(exc).__name__}).", retryable=True
            ) from exc
        with response:
            if response.status_code >= 400:
                raise _error_for_status(response)
            data = self._read_capped(response)
        audio_info(data)  # raises SpeechError("bad_response") for anything that is not audio
        return data

    def _read_capped(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise SpeechError("bad_response", "The voice service sent too much audio.", retryable=False)
        buffer = io.BytesIO()
        try:
            for chunk in response.iter_content(chunk_size=64 * 1024):
                buffer.write(chunk)
                if buffer.tell() > self.max_bytes:
                    raise SpeechError(
                        "bad_response", "The voice service sent too much audio.", retryable=False
                    )
        except requests.Timeout as exc:
            raise SpeechError("timeout", "The voice service stopped sending audio.", retryable=True) from exc
        except requests.RequestException as exc:
            raise SpeechError(
                "connection", f"The voice service broke off ({type(exc).__name__}).", retryable=True
            ) from exc
        return buffer.getvalue()

    def voices(self) -> list[str]:
        """The server's voices (Kokoro-FastAPI's ``/v1/audio/voices``), else OpenAI's six names."""
        try:
            response = self.session.get(f"{self.root}/v1/audio/voices", timeout=self.timeout)
            payload: Any = response.json() if response.status_code == 200 else None
        except (requests.RequestException, ValueError):
            payload = None
        listed = payload.get("voices") if isinstance(payload, dict) else None
        names: list[str] = []
        if isinstance(listed, list):
            for item in listed[:VOICES_MAX]:
                # Kokoro lists names; others may list {"id"|"name": ...} objects.
                name = item.get("id") or item.get("name") if isinstance(item, dict) else item
                if isinstance(name, str) and 0 < len(name) <= VOICE_NAME_MAX and name not in names:
                    names.append(name)
        return names or list(OPENAI_VOICES)


# --- what the bytes are ----------------------------------------------------------------

# MPEG audio: bitrates (kbit/s) by index for MPEG-1 Layer III and MPEG-2/2.5 Layer III.
_MP3_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def audio_info(data: bytes) -> AudioInfo:
    """The content type, file extension and duration of WAV, MP3 or Ogg audio.

    Raises ``SpeechError("bad_response")`` for anything else, or audio with no length."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        info = AudioInfo("audio/wav", "wav", _wav_ms(data))
    elif data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        info = AudioInfo("audio/mpeg", "mp3", _mp3_ms(data))
    elif data[:4] == b"OggS":
        info = AudioInfo("audio/ogg", "ogg", _ogg_ms(data))
    else:
        raise SpeechError(
            "bad_response", "The voice service sent something that is not audio.", retryable=True
        )
    if info.duration_ms <= 0:
        raise SpeechError("bad_response", "The voice service sent audio with no length.", retryable=True)
    return info


def _wav_ms(data: bytes) -> int:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            rate = reader.getframerate()
            frames = reader.getnframes()
    except (wave.Error, EOFError, struct.error) as exc:
        raise SpeechError(
            "bad_response", "The voice service sent a broken WAV file.", retryable=True
        ) from exc
    if frames == 0 or frames >= 0x7FFFFFFF // max(rate, 1):  # streamed WAVs leave the size unset
        data_at = data.find(b"data")
        frames = max(len(data) - data_at - 8, 0) // 2 if data_at >= 0 else 0  # 16-bit mono, the usual
    return int(frames * 1000 / rate) if rate else 0


def _mp3_ms(data: bytes) -> int:
    """Walk the MPEG frames (constant or variable bitrate alike) and add up their lengths."""
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
        at = 10 + size
    seconds = 0.0
    while at + 4 <= len(data):
        header = int.from_bytes(data[at : at + 4], "big")
        if header >> 21 != 0x7FF:
            break
        version = (header >> 19) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
        layer = (header >> 17) & 3  # 1: Layer III
        bitrate_index = (header >> 12) & 15
        rate_index = (header >> 10) & 3
        padding = (header >> 9) & 1
        if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
            break
        bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
        rate = _MP3_RATES[version][rate_index]
        samples = 1152 if version == 3 else 576
        length = samples // 8 * bitrate // rate + padding
        seconds += samples / rate
        at += length
    return int(seconds * 1000)


def _ogg_ms(data: bytes) -> int:
    """The last page's granule position: Opus counts at 48 kHz; Vorbis at its own rate."""
    last = data.rfind(b"OggS")
    if last < 0 or last + 14 > len(data):
        return 0
    granule = struct.unpack_from("<q", data, last + 6)[0]
    rate = 48000
    vorbis = data.find(b"\x01vorbis")
    if vorbis >= 0 and vorbis + 16 <= len(data):
        rate = struct.unpack_from("<I", data, vorbis + 12)[0] or 48000
    return int(max(granule, 0) * 1000 / rate)
