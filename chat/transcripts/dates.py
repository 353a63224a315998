"""SillyTavern's dates, read and written.

ST writes a message's ``send_date`` in its "humanized" form, ``November 30,
2026 9:26pm`` (the browser's local time, to the minute, no zone), and a
chat's ``create_date`` as ``2026-11-30 @21h 26m 05s 123ms``. When it reads
them back it also takes epoch milliseconds (a number or a string of digits)
and ISO 8601. We read all four and write the two it writes, in UTC: a file
carries no zone, so UTC is the one reading that every server agrees on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_NUMBER = {name.lower(): number for number, name in enumerate(MONTHS, start=1)}
_MONTH_NUMBER.update({name[:3].lower(): number for number, name in enumerate(MONTHS, start=1)})

_MERIDIEM = re.compile(
    r"^([A-Za-z]+)\.?\s+(\d{1,2}),\s*(\d{4})\s+(\d{1,2}):(\d{2})\s*([ap]m)$", re.IGNORECASE
)
_HUMANIZED_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})\s*@(\d{1,2})h\s*(\d{1,2})m\s*(\d{1,2})s(?:\s*(\d{1,3})ms)?$"
)
# Epoch milliseconds from 1970 to the year 9999; anything else is not a date.
_MAX_EPOCH_MS = 253_402_300_799_999


def parse_st_date(value: object) -> datetime | None:
    """The moment ``value`` names in any form ST reads, as an aware UTC datetime; None if none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch_ms(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isdigit():
        return _from_epoch_ms(int(text))
    for parse in (_parse_meridiem, _parse_humanized_iso, _parse_iso):
        try:
            found = parse(text)
        except ValueError:
            found = None
        if found is not None:
            return found
    return None


def _from_epoch_ms(value: float) -> datetime | None:
    if value != value or not 0 <= value <= _MAX_EPOCH_MS:  # NaN, negative, past year 9999
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _parse_meridiem(text: str) -> datetime | None:
    match = _MERIDIEM.match(text)
    if match is None:
        return None
    month_name, day, year, hour, minute, meridiem = match.groups()
    month = _MONTH_NUMBER.get(month_name.lower())
    if month is None or not 1 <= int(hour) <= 12:
        return None
    hour24 = int(hour) % 12 + (12 if meridiem.lower() == "pm" else 0)
    return datetime(int(year), month, int(day), hour24, int(minute), tzinfo=UTC)


def _parse_humanized_iso(text: str) -> datetime | None:
    match = _HUMANIZED_ISO.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, millis = match.groups()
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int(millis or 0) * 1000,
        tzinfo=UTC,
    )


def _parse_iso(text: str) -> datetime | None:
    if not text[:4].isdigit():
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_send_date(moment: datetime) -> str:
    """``November 30, 2026 9:26pm``: what ST writes as a message's ``send_date`` (here in UTC)."""
    moment = moment.astimezone(UTC)
    hour = moment.hour % 12 or 12
    meridiem = "pm" if moment.hour >= 12 else "am"
    return f"{MONTHS[moment.month - 1]} {moment.day}, {moment.year} {hour}:{moment.minute:02d}{meridiem}"


def format_create_date(moment: datetime) -> str:
    """``2026-11-30 @21h 26m 05s 123ms``: what ST writes as a chat's ``create_date`` (here in UTC).

    ST pads the hour, minute and second to two digits, not the month or day,
    and the milliseconds only to two; so do we, so a file reads as ST's own.
    """
    moment = moment.astimezone(UTC)
    millis = moment.microsecond // 1000
    return (
        f"{moment.year}-{moment.month}-{moment.day} @{moment.hour:02d}h {moment.minute:02d}m "
        f"{moment.second:02d}s {millis:02d}ms"
    )


def to_iso(moment: datetime | None) -> str | None:
    """An ISO 8601 UTC timestamp with a ``Z``, as our own JSON writes dates; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
