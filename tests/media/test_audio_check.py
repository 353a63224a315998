"""The voice upload's check: the container told from its bytes, its length from its headers."""

from __future__ import annotations

import pytest

from media.audio_check import AudioRejected, inspect_audio, sniff_format
from tests.media import audio_samples as samples

MB = 1024 * 1024


def inspect(raw: bytes, *, max_seconds: float = 120, max_bytes: int = 10 * MB):
    return inspect_audio(raw, max_bytes=max_bytes, max_seconds=max_seconds)


@pytest.mark.parametrize(
    ("raw", "kind", "content_type"),
    [
        (samples.wav(0.5), "wav", "audio/wav"),
        (samples.flac(2), "flac", "audio/flac"),
        (samples.ogg_opus(2), "ogg", "audio/ogg"),
        (samples.ogg_vorbis(2), "ogg", "audio/ogg"),
        (samples.webm(2), "webm", "audio/webm"),
        (samples.mp3(2), "mp3", "audio/mpeg"),
        (samples.mp3(2, id3=False), "mp3", "audio/mpeg"),
        (samples.m4a(2), "m4a", "audio/mp4"),
    ],
    ids=["wav", "flac", "opus", "vorbis", "webm", "mp3-id3", "mp3-bare", "m4a"],
)
def test_each_container_is_told_by_its_magic_bytes(raw, kind, content_type):
    assert sniff_format(raw) == kind
    assert inspect(raw).content_type == content_type


def test_a_wav_length_is_exact():
    info = inspect(samples.wav(1.5))
    assert info.seconds == 1.5 and info.exact


def test_a_flac_length_is_exact_and_estimated_when_the_stream_leaves_it_out():
    assert inspect(samples.flac(3.25)).seconds == pytest.approx(3.25)
    unknown = inspect(samples.flac(3.25, known_length=False))
    assert not unknown.exact and unknown.seconds > 0


def test_an_ogg_length_comes_from_the_last_page_less_the_opus_pre_skip():
    opus = inspect(samples.ogg_opus(7.5))
    assert opus.seconds == pytest.approx(7.5) and opus.exact
    assert inspect(samples.ogg_vorbis(4)).seconds == pytest.approx(4)


def test_a_mediarecorder_webm_is_measured_by_its_last_block():
    info = inspect(samples.webm(2.5))
    assert info.seconds == pytest.approx(2.5) and not info.exact


def test_a_webm_with_a_duration_uses_it():
    info = inspect(samples.webm(3.0, with_duration=True))
    assert info.seconds == pytest.approx(3.0) and info.exact


def test_an_mp3_length_comes_from_the_bitrate_or_the_xing_frame_count():
    assert inspect(samples.mp3(10)).seconds == pytest.approx(10, abs=0.05)
    vbr = inspect(samples.mp3(10, xing=True))
    assert vbr.exact and vbr.seconds == pytest.approx(10, abs=0.05)  # not the half its bytes suggest


@pytest.mark.parametrize("version", [0, 1])
def test_an_m4a_length_comes_from_mvhd(version):
    info = inspect(samples.m4a(6, version=version))
    assert info.seconds == pytest.approx(6) and info.exact


def test_a_fragmented_m4a_is_estimated_from_its_size():
    info = inspect(samples.m4a(6, fragmented=True))
    assert not info.exact and info.seconds > 0


def test_a_png_named_webm_is_refused_as_not_audio():
    with pytest.raises(AudioRejected) as caught:
        inspect(samples.png())
    assert caught.value.status == 415 and caught.value.code == "not_audio"


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.7\n" + b"\x00" * 100,
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # a HEIF picture is ISO media too
        b"ID3\x04\x00\x00\x00\x00\x00\x00",  # a tag and nothing after it
        b"\xff\xfb\x90\x44" + b"\x00" * 413 + b"not a frame",  # one frame header, then not MP3
        samples.webm(1, doc_type=b"mkvfoo"),
    ],
    ids=["html", "pdf", "heic", "id3-only", "one-frame", "other-ebml"],
)
def test_other_files_are_refused_as_not_audio(raw):
    with pytest.raises(AudioRejected) as caught:
        inspect(raw)
    assert caught.value.status == 415


def test_an_ogg_of_another_codec_is_refused():
    raw = samples.ogg_opus(1).replace(b"OpusHead", b"Speex   ", 1)
    with pytest.raises(AudioRejected) as caught:
        inspect(raw)
    assert caught.value.status == 415


def test_an_empty_upload_is_refused():
    with pytest.raises(AudioRejected) as caught:
        inspect(b"")
    assert (caught.value.status, caught.value.code) == (400, "empty")


def test_a_wav_without_samples_is_empty():
    with pytest.raises(AudioRejected) as caught:
        inspect(samples.wav(0))
    assert caught.value.code == "empty"


@pytest.mark.parametrize(
    "raw",
    [
        samples.wav(1)[:20],
        samples.flac(1)[:20],
        samples.ogg_opus(1)[:30],
        samples.webm(1)[:30],
        samples.m4a(1)[:40],
        b"RIFF\x00\x00\x00\x00WAVE",
        b"OggS",
        b"fLaC",
    ],
    ids=["wav", "flac", "ogg", "webm", "m4a", "wav-header", "ogg-magic", "flac-magic"],
)
def test_a_truncated_recording_is_refused_as_damaged(raw):
    with pytest.raises(AudioRejected) as caught:
        inspect(raw)
    assert caught.value.status == 400


def test_a_truncated_webm_keeps_what_it_has():
    raw = samples.webm(3)
    info = inspect(raw[: len(raw) * 2 // 3])  # cut mid-cluster, as a dropped upload would be
    assert 1 < info.seconds < 3


def test_a_recording_over_the_size_limit_is_refused():
    with pytest.raises(AudioRejected) as caught:
        inspect(samples.wav(1), max_bytes=1000)
    assert (caught.value.status, caught.value.code) == (413, "too_large")


@pytest.mark.parametrize(
    "raw",
    [samples.wav(3), samples.flac(3), samples.ogg_opus(3), samples.webm(3), samples.mp3(3), samples.m4a(3)],
    ids=["wav", "flac", "ogg", "webm", "mp3", "m4a"],
)
def test_a_recording_over_the_duration_limit_is_refused(raw):
    with pytest.raises(AudioRejected) as caught:
        inspect(raw, max_seconds=2)
    assert (caught.value.status, caught.value.code) == (413, "too_long")
    assert "2 seconds" in caught.value.message


def test_a_webm_built_to_make_the_walk_slow_is_refused(monkeypatch):
    monkeypatch.setattr("media.audio_check.MAX_WEBM_ELEMENTS", 50)
    with pytest.raises(AudioRejected) as caught:
        inspect(samples.webm(2))
    assert caught.value.code == "damaged"
