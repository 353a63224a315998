"""Small recordings in each container the voice upload takes, built byte by byte.

No encoder is needed: each builder writes the container's real headers (the
parts ``media.audio_check`` reads) around filler frames, so a test chooses the
length exactly. ``wav`` is a real, playable tone.
"""

from __future__ import annotations

import io
import math
import struct
import wave


def wav(seconds: float = 1.0, *, rate: int = 16_000, amplitude: float = 0.3) -> bytes:
    """A mono 16-bit sine tone of ``seconds``."""
    frames = int(seconds * rate)
    samples = (int(amplitude * 32767 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def flac(seconds: float = 1.0, *, rate: int = 44_100, known_length: bool = True) -> bytes:
    samples = int(seconds * rate) if known_length else 0
    channels, bits = 1, 16
    packed = rate << 44 | (channels - 1) << 41 | (bits - 1) << 36 | samples
    streaminfo = struct.pack(">HH", 4096, 4096) + b"\x00" * 6 + struct.pack(">Q", packed) + b"\x00" * 16
    block_header = bytes([0x80]) + len(streaminfo).to_bytes(3, "big")  # the last metadata block
    return b"fLaC" + block_header + streaminfo + b"\xff\xf8" + b"\x00" * 200


# --- Ogg --------------------------------------------------------------------------------

_CRC_TABLE = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = (_r << 1) ^ 0x04C11DB7 if _r & 0x80000000 else _r << 1
    _CRC_TABLE.append(_r & 0xFFFFFFFF)


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


def _ogg_page(packet: bytes, *, granule: int, sequence: int, flags: int = 0) -> bytes:
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = struct.pack("<4sBBqIII", b"OggS", 0, flags, granule, 1234, sequence, 0)
    page = header + bytes([len(lacing)]) + bytes(lacing) + packet
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_opus(seconds: float = 1.0, *, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48_000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    pages = [_ogg_page(head, granule=0, sequence=0, flags=2), _ogg_page(tags, granule=0, sequence=1)]
    total = int(seconds * 48_000) + pre_skip
    steps = 5
    for n in range(1, steps + 1):
        pages.append(_ogg_page(b"\xfc" + b"\x00" * 60, granule=total * n // steps, sequence=1 + n))
    return b"".join(pages)


def ogg_vorbis(seconds: float = 1.0, *, rate: int = 44_100) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, rate, 0, 128_000, 0, 0xB8, 1)
    pages = [_ogg_page(ident, granule=0, sequence=0, flags=2)]
    pages.append(_ogg_page(b"\x00" * 100, granule=int(seconds * rate), sequence=1, flags=4))
    return b"".join(pages)


# --- WebM -------------------------------------------------------------------------------


def _ebml_size(size: int | None) -> bytes:
    if size is None:  # "unknown", as MediaRecorder writes the segment and its clusters
        return b"\x01\xff\xff\xff\xff\xff\xff\xff"
    return b"\x01" + size.to_bytes(7, "big")  # the 8-byte form: simple and always valid


def _element(element_id: int, data: bytes = b"", *, unknown: bool = False) -> bytes:
    id_bytes = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return id_bytes + _ebml_size(None if unknown else len(data)) + data


def webm(seconds: float = 1.0, *, with_duration: bool = False, doc_type: bytes = b"webm") -> bytes:
    """Opus in WebM as Chromium's MediaRecorder writes it: unknown sizes, 20 ms blocks, no
    Duration (``with_duration``: an Info Duration in milliseconds, as a muxer that seeks back)."""
    header = _element(0x1A45DFA3, _element(0x4286, b"\x01") + _element(0x4282, doc_type))
    info = _element(0x2AD7B1, (1_000_000).to_bytes(3, "big")) + _element(0x4D80, b"test")
    if with_duration:
        info += _element(0x4489, struct.pack(">d", seconds * 1000))
    tracks = _element(0x1654AE6B, _element(0xAE, _element(0xD7, b"\x01") + _element(0x86, b"A_OPUS")))
    body = _element(0x1549A966, info) + tracks
    block_ms, cluster_ms = 20, 1000
    total_ms = int(seconds * 1000)
    for cluster_start in range(0, total_ms, cluster_ms):
        cluster = _element(0xE7, cluster_start.to_bytes(4, "big"))
        for offset in range(0, min(cluster_ms, total_ms - cluster_start + 1), block_ms):
            if cluster_start + offset > total_ms:
                break
            block = b"\x81" + struct.pack(">h", offset) + b"\x80" + b"\xfc" + b"\x00" * 40
            cluster += _element(0xA3, block)
        body += _element(0x1F43B675, unknown=True) + cluster
    return header + _element(0x18538067, unknown=True) + body


# --- MP3 --------------------------------------------------------------------------------

# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding, joint stereo: 417 bytes a frame.
_MP3_HEADER = b"\xff\xfb\x90\x44"
_MP3_FRAME = 144 * 128_000 // 44_100
_MP3_FRAME_SECONDS = 1152 / 44_100


def mp3(seconds: float = 1.0, *, id3: bool = True, xing: bool = False) -> bytes:
    frames = max(1, round(seconds / _MP3_FRAME_SECONDS))
    out = b""
    if id3:
        tag = b"TIT2" + (5).to_bytes(4, "big") + b"\x00\x00\x00test"
        size = len(tag)
        syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
        out += b"ID3\x04\x00\x00" + syncsafe + tag
    if xing:  # a first frame that carries the frame count (VBR files), then the audio
        info = _MP3_HEADER + b"\x00" * 32 + b"Xing" + struct.pack(">II", 1, frames)
        out += info + b"\x00" * (_MP3_FRAME - len(info))
        frames_written = frames // 2  # a VBR file is smaller than its bitrate says
    else:
        frames_written = frames
    frame = _MP3_HEADER + b"\x00" * (_MP3_FRAME - 4)
    return out + frame * frames_written


# --- MP4 / M4A --------------------------------------------------------------------------


def _box(box_type: bytes, data: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(data), box_type) + data


def m4a(
    seconds: float = 1.0, *, timescale: int = 44_100, fragmented: bool = False, version: int = 0
) -> bytes:
    ftyp = _box(b"ftyp", b"M4A \x00\x00\x00\x00M4A isommp42")
    duration = 0 if fragmented else int(seconds * timescale)
    if version == 1:
        mvhd = bytes([1, 0, 0, 0]) + struct.pack(">QQIQ", 0, 0, timescale, duration) + b"\x00" * 80
    else:
        mvhd = bytes([0, 0, 0, 0]) + struct.pack(">IIII", 0, 0, timescale, duration) + b"\x00" * 80
    moov = _box(b"moov", _box(b"mvhd", mvhd))
    mdat = _box(b"mdat", b"\x00" * (int(seconds * 8000) if fragmented else 500))
    return ftyp + moov + mdat


def png() -> bytes:
    """A real PNG (to rename as a recording)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()
