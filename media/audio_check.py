"""Recognise an uploaded recording by its bytes and measure how long it is. No storage.

A recording is validated as pictures are: the browser's content type and
file name are not trusted. The container is told from its first bytes and
its length read from its own headers where that is cheap; nothing is decoded.

| container      | magic bytes                      | duration                                           |
|----------------|----------------------------------|----------------------------------------------------|
| WAV            | ``RIFF`` .... ``WAVE``           | exact: the ``data`` chunk's bytes / the byte rate  |
| FLAC           | ``fLaC``                         | exact: STREAMINFO's samples / its rate (a stream   |
|                |                                  | that leaves the count out: estimated, see below)   |
| Ogg (Opus,     | ``OggS``                         | exact: the last page's granule position / the rate |
| Vorbis)        |                                  | (48 kHz less the pre-skip for Opus)                |
| WebM/Matroska  | ``1A 45 DF A3`` + DocType        | Info's Duration when written; else the timecode of |
|                |                                  | the last block (MediaRecorder writes no Duration)  |
| MP4/M4A        | .... ``ftyp``                    | exact: ``moov/mvhd``; a fragmented file with none: |
|                |                                  | estimated                                          |
| MP3            | ``ID3`` or an MPEG audio frame   | the Xing/Info frame count when there is one, else  |
|                |                                  | the bytes at the first frame's bitrate (exact for  |
|                |                                  | constant bitrate, an estimate for variable)        |

An estimate (``AudioInfo.exact`` False) is a length at ``ESTIMATE_BITS_PER_SECOND``
for compressed audio (an uncompressed FLAC stream: half the PCM rate). It only
guards the duration limit; the byte limit bounds every upload whatever its kind.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from django.utils.translation import gettext as _

__all__ = ["CONTENT_TYPES", "AudioInfo", "AudioRejected", "inspect_audio", "sniff_format"]

# The container's name -> the content type the back end is told.
CONTENT_TYPES = {
    "webm": "audio/webm",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
}
# The bitrate an estimate assumes for compressed audio without a usable header (64 kbit/s:
# AAC and Opus speech from a browser are around it).
ESTIMATE_BITS_PER_SECOND = 64_000
# Elements a WebM walk may visit: two minutes of 20 ms blocks are 6,000; anything far past
# that is a file built to make the walk slow.
MAX_WEBM_ELEMENTS = 200_000


# ISO media files that are pictures (HEIF, AVIF, JPEG 2000, camera raw), not recordings.
_IMAGE_BRANDS = frozenset(
    {
        b"heic",
        b"heix",
        b"heim",
        b"heis",
        b"hevc",
        b"hevx",
        b"mif1",
        b"msf1",
        b"avif",
        b"avis",
        b"jp2 ",
        b"crx ",
    }
)


class AudioRejected(Exception):
    """The upload is not a recording we take; ``message`` is safe to show, ``status`` is HTTP's."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: str  # a key of CONTENT_TYPES
    seconds: float
    exact: bool  # False: ``seconds`` is an estimate (see the module's table)
    byte_size: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def _damaged() -> AudioRejected:
    return AudioRejected("damaged", _("The recording is damaged or cut short."))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def sniff_format(raw: bytes) -> str | None:
    """The container ``raw`` starts like (a key of ``CONTENT_TYPES``), or None."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        return "wav"
    if raw[:4] == b"fLaC":
        return "flac"
    if raw[:4] == b"OggS":
        return "ogg"
    if raw[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if raw[4:8] == b"ftyp" and raw[8:12] not in _IMAGE_BRANDS:
        return "m4a"
    if raw[:3] == b"ID3" or _mp3_frame(raw, 0) is not None:
        return "mp3"
    return None


def inspect_audio(raw: bytes, *, max_bytes: int, max_seconds: float) -> AudioInfo:
    """Check ``raw`` is a recording within the limits; its container and length.

    Raises ``AudioRejected``: empty or damaged (400), too large or too long
    (413), not audio we take (415).
    """
    if not raw:
        raise AudioRejected("empty", _("The recording is empty."))
    if len(raw) > max_bytes:
        raise AudioRejected(
            "too_large", _("The recording is larger than %(size)s.") % {"size": _mb(max_bytes)}, status=413
        )
    kind = sniff_format(raw)
    if kind is None:
        raise AudioRejected(
            "not_audio",
            _("The file is not a recording we can read: use WebM, Ogg, WAV, MP3, M4A or FLAC."),
            status=415,
        )
    try:
        seconds, exact = _MEASURES[kind](raw)
    except (IndexError, struct.error, ValueError, OverflowError) as exc:
        raise _damaged() from exc
    if seconds > max_seconds:
        raise AudioRejected(
            "too_long",
            _("The recording is longer than %(seconds)s seconds.") % {"seconds": int(max_seconds)},
            status=413,
        )
    return AudioInfo(format=kind, seconds=round(seconds, 3), exact=exact, byte_size=len(raw))


def _estimate(byte_count: int) -> tuple[float, bool]:
    return byte_count * 8 / ESTIMATE_BITS_PER_SECOND, False


# --- WAV ---------------------------------------------------------------------------------


def _wav(raw: bytes) -> tuple[float, bool]:
    pos, byte_rate, data_size = 12, 0, None
    while pos + 8 <= len(raw):
        chunk_id = raw[pos : pos + 4]
        (size,) = struct.unpack_from("<I", raw, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16:
                raise _damaged()
            (byte_rate,) = struct.unpack_from("<I", raw, body + 8)
        elif chunk_id == b"data":
            data_size = min(size, len(raw) - body)  # a streamed header may say 0xFFFFFFFF
            break
        pos = body + size + (size & 1)
    if not byte_rate or data_size is None:
        raise _damaged()
    if data_size == 0:
        raise AudioRejected("empty", _("The recording is empty."))
    return data_size / byte_rate, True


# --- FLAC --------------------------------------------------------------------------------


def _flac(raw: bytes) -> tuple[float, bool]:
    if raw[4] & 0x7F != 0 or len(raw) < 42:  # the first block must be STREAMINFO (34 bytes)
        raise _damaged()
    (packed,) = struct.unpack_from(">Q", raw, 8 + 10)
    rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    bits = ((packed >> 36) & 0x1F) + 1
    samples = packed & ((1 << 36) - 1)
    if rate == 0:
        raise _damaged()
    if samples:
        return samples / rate, True
    return len(raw) / (rate * channels * bits / 8 * 0.5), False


# --- Ogg ---------------------------------------------------------------------------------


def _ogg(raw: bytes) -> tuple[float, bool]:
    segments = raw[26]
    packet = raw[27 + segments : 27 + segments + 20]
    if len(packet) < 16:
        raise _damaged()
    if packet.startswith(b"OpusHead"):
        (pre_skip,) = struct.unpack_from("<H", packet, 10)
        rate = 48_000
    elif packet.startswith(b"\x01vorbis"):
        pre_skip = 0
        (rate,) = struct.unpack_from("<I", packet, 12)
    else:
        raise AudioRejected("not_audio", _("This Ogg file holds neither Opus nor Vorbis audio."), status=415)
    if not rate:
        raise _damaged()
    end = len(raw)
    while True:  # the last page that ends a packet carries the stream's position
        page = raw.rfind(b"OggS", 0, end)
        if page < 0 or page + 14 > len(raw):
            raise _damaged()
        (granule,) = struct.unpack_from("<q", raw, page + 6)
        if granule >= 0:
            return max(granule - pre_skip, 0) / rate, True
        end = page


# --- WebM / Matroska ---------------------------------------------------------------------

_EBML, _DOCTYPE = 0x1A45DFA3, 0x4282
_SEGMENT, _INFO, _CLUSTER, _BLOCK_GROUP = 0x18538067, 0x1549A966, 0x1F43B675, 0xA0
_TIMECODE_SCALE, _DURATION, _TIMECODE, _SIMPLE_BLOCK, _BLOCK = 0x2AD7B1, 0x4489, 0xE7, 0xA3, 0xA1
# Elements whose children are walked in place (their size may be "unknown", as MediaRecorder
# writes the segment and its clusters).
_ENTERED = frozenset({_SEGMENT, _CLUSTER, _BLOCK_GROUP})


def _vint(raw: bytes, pos: int, *, keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``pos``: (value or None for "unknown", its length)."""
    first = raw[pos]
    if first == 0:
        raise ValueError("no EBML length marker")
    length = 9 - first.bit_length()
    if pos + length > len(raw):
        raise IndexError("cut inside an EBML number")
    value = int.from_bytes(raw[pos : pos + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (None if value == (1 << (7 * length)) - 1 else value), length


def _element(raw: bytes, pos: int) -> tuple[int, int | None, int]:
    """(id, size or None, where its data starts) of the element at ``pos``."""
    element_id, id_length = _vint(raw, pos, keep_marker=True)
    size, size_length = _vint(raw, pos + id_length, keep_marker=False)
    return element_id or 0, size, pos + id_length + size_length


def _uint(raw: bytes, start: int, size: int) -> int:
    return int.from_bytes(raw[start : start + size], "big")


def _webm(raw: bytes) -> tuple[float, bool]:
    element_id, size, start = _element(raw, 0)
    if size is None:
        raise _damaged()
    header_end = start + size
    doc_type = b""
    pos = start
    while pos < header_end:
        child, child_size, child_start = _element(raw, pos)
        if child_size is None:
            raise _damaged()
        if child == _DOCTYPE:
            doc_type = raw[child_start : child_start + child_size].rstrip(b"\0")
        pos = child_start + child_size
    if doc_type not in (b"webm", b"matroska"):
        raise AudioRejected("not_audio", _("The file is not a recording we can read."), status=415)
    scale, duration, cluster_time, last_time = 1_000_000, None, 0, None
    pos, visited = header_end, 0
    while pos < len(raw):
        visited += 1
        if visited > MAX_WEBM_ELEMENTS:
            raise _damaged()
        try:
            element_id, size, start = _element(raw, pos)
        except IndexError:
            break  # the file ends inside an element's header: keep what was read
        if element_id in _ENTERED:
            pos = start
            continue
        if size is None:
            raise _damaged()
        if element_id == _INFO:
            scale, duration = _webm_info(raw, start, min(start + size, len(raw)), scale)
        elif element_id == _TIMECODE:
            cluster_time = _uint(raw, start, size)
        elif element_id in (_SIMPLE_BLOCK, _BLOCK) and start + 4 <= len(raw):
            _track, track_length = _vint(raw, start, keep_marker=False)
            (relative,) = struct.unpack_from(">h", raw, start + track_length)
            time = cluster_time + relative
            last_time = time if last_time is None else max(last_time, time)
        pos = start + size
    if duration is not None:
        return duration * scale / 1e9, True
    if last_time is None:
        raise AudioRejected("empty", _("The recording has no sound in it."))
    return max(last_time, 0) * scale / 1e9, False


def _webm_info(raw: bytes, start: int, end: int, scale: int) -> tuple[int, float | None]:
    duration = None
    pos = start
    while pos < end:
        child, size, child_start = _element(raw, pos)
        if size is None:
            raise _damaged()
        if child == _TIMECODE_SCALE:
            scale = _uint(raw, child_start, size) or scale
        elif child == _DURATION and size in (4, 8):
            (duration,) = struct.unpack_from(">f" if size == 4 else ">d", raw, child_start)
        pos = child_start + size
    if duration is not None and not duration >= 0:  # NaN or negative
        raise _damaged()
    return scale, duration


# --- MP4 / M4A ---------------------------------------------------------------------------


def _boxes(raw: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, data start, data end) of the boxes between ``start`` and ``end``."""
    found, pos = [], start
    while pos + 8 <= end:
        size, box_type = struct.unpack_from(">I4s", raw, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", raw, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError("box smaller than its header")
        found.append((box_type, pos + header, min(pos + size, end)))
        pos += size
    return found


def _m4a(raw: bytes) -> tuple[float, bool]:
    moov = next((box for box in _boxes(raw, 0, len(raw)) if box[0] == b"moov"), None)
    mvhd = next((box for box in _boxes(raw, moov[1], moov[2]) if box[0] == b"mvhd"), None) if moov else None
    if mvhd is None:  # cut off before its index (or a file that never had one): unplayable
        raise _damaged()
    start = mvhd[1]
    if raw[start] == 1:
        timescale, duration = struct.unpack_from(">IQ", raw, start + 20)
    else:
        timescale, duration = struct.unpack_from(">II", raw, start + 12)
    if not timescale:
        raise _damaged()
    if duration and duration not in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return duration / timescale, True
    return _estimate(len(raw))  # fragmented (Safari's MediaRecorder): the length is in the fragments


# --- MP3 ---------------------------------------------------------------------------------

# Layer III bitrates in kbit/s by index: MPEG-1, then MPEG-2 and 2.5.
_MP3_BITRATES = (
    (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
)
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@dataclass(frozen=True, slots=True)
class _Frame:
    bitrate: int  # bit/s
    rate: int
    length: int  # bytes
    samples: int  # per frame
    side_info: int  # bytes between the header and a Xing/Info tag
    mpeg1: bool


def _mp3_frame(raw: bytes, pos: int) -> _Frame | None:
    """The Layer III frame header at ``pos``, or None when there is none."""
    if pos + 4 > len(raw) or raw[pos] != 0xFF or raw[pos + 1] & 0xE0 != 0xE0:
        return None
    version = (raw[pos + 1] >> 3) & 0x3
    layer = (raw[pos + 1] >> 1) & 0x3
    bitrate_index = raw[pos + 2] >> 4
    rate_index = (raw[pos + 2] >> 2) & 0x3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _MP3_BITRATES[0 if mpeg1 else 1][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (raw[pos + 2] >> 1) & 0x1
    mono = raw[pos + 3] >> 6 == 3
    samples = 1152 if mpeg1 else 576
    length = samples // 8 * bitrate // rate + padding
    side_info = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    return _Frame(bitrate, rate, length, samples, side_info, mpeg1)


def _mp3(raw: bytes) -> tuple[float, bool]:
    pos = 0
    if raw[:3] == b"ID3":
        size = (raw[6] & 0x7F) << 21 | (raw[7] & 0x7F) << 14 | (raw[8] & 0x7F) << 7 | (raw[9] & 0x7F)
        pos = 10 + size + (10 if raw[5] & 0x10 else 0)
    frame = _mp3_frame(raw, pos)
    if frame is None:  # an ID3 tag with no audio after it, or something else named .mp3
        raise AudioRejected("not_audio", _("The file is not a recording we can read."), status=415)
    following = pos + frame.length
    if following + 2 <= len(raw) and _mp3_frame(raw, following) is None:
        raise AudioRejected("not_audio", _("The file is not a recording we can read."), status=415)
    tag = pos + 4 + frame.side_info
    if raw[tag : tag + 4] in (b"Xing", b"Info"):
        (flags,) = struct.unpack_from(">I", raw, tag + 4)
        if flags & 0x1:
            (frames,) = struct.unpack_from(">I", raw, tag + 8)
            return frames * frame.samples / frame.rate, True
    return (len(raw) - pos) * 8 / frame.bitrate, False


_MEASURES = {"wav": _wav, "flac": _flac, "ogg": _ogg, "webm": _webm, "m4a": _m4a, "mp3": _mp3}
