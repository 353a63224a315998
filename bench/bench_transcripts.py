"""Importing a 10,000-message SillyTavern chat (with swipes) and exporting it again.

Runs in this process against the configured database (PostgreSQL when
``make bench`` finds it). Beside the import it times, in the same run, two
references for the same file: json-parsing its lines alone (the floor for
reading it) and a plain ``bulk_create`` of the same message and turn rows
(the floor for writing them). The acceptance target: the import well under
10 s. Medians over ``RUNS`` runs; the conversations are deleted between runs,
outside the timings.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.stats import table

MESSAGES = 10_000
RUNS = 5
SWIPE_EVERY = 3  # every third reply has three versions


def _st_chat() -> bytes:
    """A chat as SillyTavern writes it: the header, then the user and the character in turn."""
    from chat.transcripts.dates import format_send_date
    from tests.chat.sillytavern import st_file, st_header, st_reply, st_user

    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines: list[dict] = [st_header()]
    for n in range(MESSAGES):
        send_date = format_send_date(start + timedelta(minutes=n))
        text = f"message {n} " * 12
        if n % 2 == 0:
            lines.append(st_user(text, send_date))
        elif (n // 2) % SWIPE_EVERY == 0:
            lines.append(st_reply(text, send_date, swipes=[f"earlier {n}", text, f"later {n}"]))
        else:
            lines.append(st_reply(text, send_date))
    return st_file(*lines)


def _bulk_reference(user, companion, rows: list[dict]) -> float:
    """A plain bulk_create of the same messages and turns (no checks, no versions logic)."""
    from chat.models import Conversation, Message, Participant, Turn

    started = time.perf_counter()
    conversation = Conversation.objects.create(owner=user, kind=Conversation.Kind.DIRECT)
    Participant.objects.create(conversation=conversation, companion=companion, position=0)
    messages = [
        Message(
            conversation=conversation,
            role=Message.Role.USER if row["is_user"] else Message.Role.ASSISTANT,
            sender=None if row["is_user"] else companion,
            content=row["mes"],
            alternatives=row.get("swipes", [])[:-1],
        )
        for row in rows
    ]
    for start in range(0, len(messages), 1000):
        Message.objects.bulk_create(messages[start : start + 1000])
    Turn.objects.bulk_create(
        [
            Turn(conversation=conversation, message=m, order=[companion.pk], status=Turn.Status.DONE)
            for m in messages
            if m.sender_id is None
        ],
        batch_size=1000,
    )
    return time.perf_counter() - started


def run() -> dict:
    from accounts.models import User
    from chat import transcripts
    from chat.models import Conversation
    from companions.models import Companion
    from tests.companions.factories import VALID

    user, _ = User.objects.get_or_create(
        username="benchtranscripts", defaults={"email": "benchtranscripts@example.com"}
    )
    Conversation.objects.filter(owner=user).delete()
    Companion.objects.filter(owner=user).delete()
    companion = Companion.objects.create(owner=user, **{**VALID, "name": "Seraphina"})
    data = _st_chat()
    print(f"file: {MESSAGES:,} messages, {len(data) / 1024 / 1024:.1f} MB", flush=True)
    timings: dict[str, list[float]] = {"parse": [], "bulk_create": [], "import": [], "export": []}
    exported_bytes = 0
    for _ in range(RUNS):
        started = time.perf_counter()
        rows = [json.loads(line) for line in data.decode("utf-8").split("\n")][1:]
        timings["parse"].append(time.perf_counter() - started)
        timings["bulk_create"].append(_bulk_reference(user, companion, rows))
        started = time.perf_counter()
        result = transcripts.conversation_import(user=user, data=data, companion=companion)
        timings["import"].append(time.perf_counter() - started)
        assert result.messages == MESSAGES
        started = time.perf_counter()
        exported_bytes = len(transcripts.export_jsonl(result.conversation))
        timings["export"].append(time.perf_counter() - started)
        Conversation.objects.filter(owner=user).delete()
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        table(
            [(name, f"{medians[name] * 1000:.0f} ms", f"{min(v) * 1000:.0f} ms", f"{max(v) * 1000:.0f} ms")
             for name, v in timings.items()],
            ("step", f"median of {RUNS}", "min", "max"),
        )
    )  # fmt: skip
    ratios = {
        "import_over_parse": medians["import"] / medians["parse"],
        "import_over_bulk_create": medians["import"] / medians["bulk_create"],
    }
    print(
        f"import = {ratios['import_over_parse']:.1f}x parsing alone, "
        f"{ratios['import_over_bulk_create']:.1f}x a plain bulk_create; target: import < 10 s "
        f"({'met' if medians['import'] < 10 else 'MISSED'})"
    )
    Companion.objects.filter(owner=user).delete()
    return {
        "messages": MESSAGES,
        "file_bytes": len(data),
        "export_bytes": exported_bytes,
        "median_ms": {name: round(value * 1000) for name, value in medians.items()},
        "ratios": {name: round(value, 2) for name, value in ratios.items()},
        "target_met": medians["import"] < 10,
    }
