"""The relay benchmark's machinery: its bookkeeping, and two streams through every system.

No timing is asserted: only that a reply is rebuilt exactly from its frames,
that losses, duplicates and reordering are counted, and that ``done`` is.
"""

from __future__ import annotations

import pytest

from bench import bench_relay
from bench.relay_fake import reply_tokens
from bench.relay_load import reassemble
from tests.conftest import require_service
from tests.fakes.services import ServiceUnavailable

TOKENS = ["Hi", " café", " 🙂", " there"]


def frames(*parts: tuple[int, str]) -> list[tuple[float, int, str]]:
    return [(float(n), offset, text) for n, (offset, text) in enumerate(parts)]


def test_frames_in_order_rebuild_the_reply_and_time_each_token():
    whole = reassemble(frames((0, "Hi"), (2, " café 🙂"), (9, " there")), TOKENS)
    assert whole.text == "Hi café 🙂 there"
    assert (whole.lost, whole.duplicated, whole.reordered, whole.corrupt) == (0, 0, 0, 0)
    assert whole.arrivals == [0.0, 1.0, 1.0, 2.0]


def test_offsets_are_code_points_not_utf16_units():
    whole = reassemble(frames((0, "Hi café 🙂"), (9, " there")), TOKENS)
    assert whole.text == "Hi café 🙂 there"
    assert whole.lost == 0 and whole.corrupt == 0


def test_a_gap_counts_the_tokens_lost():
    whole = reassemble(frames((0, "Hi"), (9, " there")), TOKENS)
    assert whole.lost == 2
    assert whole.arrivals[1] is None and whole.arrivals[3] == 1.0


def test_an_overlap_counts_duplicates():
    whole = reassemble(frames((0, "Hi café"), (2, " café 🙂"), (9, " there")), TOKENS)
    assert whole.text == "Hi café 🙂 there"
    assert whole.duplicated == 1 and whole.lost == 0


def test_a_late_frame_counts_as_reordered():
    whole = reassemble(frames((0, "Hi"), (7, " 🙂 there"), (2, " café")), TOKENS)
    assert whole.reordered == 1 and whole.lost == 0


def test_a_wrong_character_is_counted():
    assert reassemble(frames((0, "Ho café 🙂 there")), TOKENS).corrupt == 1


def test_the_fakes_reply_has_distinct_tokens_and_no_outer_space():
    tokens = reply_tokens(200)
    assert len(set(tokens)) == 200
    text = "".join(tokens)
    assert text == text.strip() and "🙂" in text and "café" in text


@pytest.mark.services
def test_two_streams_through_every_system_arrive_whole(tmp_path):
    try:
        out = bench_relay.measure([2], list(bench_relay.SYSTEMS), timeout=120, var=tmp_path)
    except ServiceUnavailable as exc:
        require_service("PostgreSQL and Redis servers", str(exc))
    rows = {row["system"]: row for row in out["rows"]}
    assert set(rows) == set(bench_relay.SYSTEMS)
    for system, row in rows.items():
        assert (row["done"], row["exact_text"]) == (2, 2), (system, row["endings"])
        assert row["delivered_tokens"] == 2 * bench_relay.TOKENS, system
        counted = ("lost_tokens", "duplicated_tokens", "reordered_tokens", "corrupt_chars")
        assert [row[name] for name in counted] == [0, 0, 0, 0], system
        measured = ("first_p99_ms", "added_p99_ms", "done_after_last_p99_ms", "send_done_p99_ms")
        assert None not in [row[name] for name in measured], system
    for system in ("reference", "companionhub"):
        assert rows[system]["cpu_per_1k"] is not None
    assert rows["companionhub"]["postgres_cpu_per_1k"] is not None
    assert "CompanionHub against the reference relay" in bench_relay.report(out)
