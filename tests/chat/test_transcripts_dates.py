"""SillyTavern's date forms: every one ST reads is read, the ones it writes are written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chat.transcripts.dates import format_create_date, format_send_date, parse_st_date

MOMENT = datetime(2026, 11, 30, 21, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "November 30, 2026 9:26pm",
        "Nov 30, 2026 9:26 PM",
        "2026-11-30 @21h 26m 00s 000ms",
        "2026-11-30@21h26m00s",
        "2026-11-30T21:26:00.000Z",
        "2026-11-30T22:26:00+01:00",
        1_796_073_960_000,
        "1796073960000",
    ],
)
def test_every_form_st_reads_is_read(value):
    assert parse_st_date(value) == MOMENT


@pytest.mark.parametrize(
    "value",
    ["", "yesterday", "Smarch 30, 2026 9:26pm", "2026-13-40T00:00:00Z", -1, 10**20, True, None, [], "9" * 70],
)
def test_anything_else_is_not_a_date(value):
    assert parse_st_date(value) is None


def test_the_forms_st_writes_are_written():
    assert format_send_date(MOMENT) == "November 30, 2026 9:26pm"
    assert format_send_date(MOMENT.replace(hour=0, minute=5)) == "November 30, 2026 12:05am"
    assert format_create_date(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "2026-1-2 @03h 04m 05s 06ms"


def test_what_is_written_reads_back():
    assert parse_st_date(format_send_date(MOMENT)) == MOMENT
    moment = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    assert parse_st_date(format_create_date(moment)) == moment
