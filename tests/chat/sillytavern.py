"""SillyTavern chat files as ST itself writes them, for the transcript tests.

Field order and shapes follow ST's own writers: the header line of
``src/endpoints/chats.js`` (``user_name``, ``character_name``,
``create_date`` in its ``2025-6-19 @21h 26m 05s 123ms`` form,
``chat_metadata`` with the ``integrity`` slug and the author's-note
settings), and the messages of ``public/script.js`` (``send_date`` in the
``June 19, 2025 9:26pm`` form, ``extra``, and for a reply with versions
``swipe_id``, ``swipes`` and ``swipe_info``). Lines are JSON.stringify's
compact form joined by a newline, without one at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "fixtures" / "sillytavern_swipes.jsonl"

METADATA = {
    "integrity": "5b0b3b0e-2f1a-4c55-9a61-0d8f4a7c2e11",
    "chat_id_hash": 7353142361894562,
    "note_prompt": "",
    "note_interval": 1,
    "note_position": 1,
    "note_depth": 4,
    "note_role": 0,
    "timedWorldInfo": {"sticky": {}, "cooldown": {}},
    "tainted": True,
    "lastInContextMessageId": 5,
}


def st_header(
    user_name: str = "User",
    character_name: str = "Seraphina",
    create_date: str = "2025-6-19 @21h 26m 05s 123ms",
    chat_metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "user_name": user_name,
        "character_name": character_name,
        "create_date": create_date,
        "chat_metadata": dict(METADATA if chat_metadata is None else chat_metadata),
    }


def st_user(mes: str, send_date: Any = "June 19, 2025 9:27pm", name: str = "User", **more: Any) -> dict:
    return {
        "name": name,
        "is_user": True,
        "is_system": False,
        "send_date": send_date,
        "mes": mes,
        "extra": {},
        **more,
    }


def st_reply(
    mes: str,
    send_date: Any = "June 19, 2025 9:28pm",
    name: str = "Seraphina",
    *,
    swipes: list[str] | None = None,
    swipe_id: int | None = None,
    reasoning: str = "",
    **more: Any,
) -> dict:
    extra: dict[str, Any] = {"api": "openai", "model": "gpt-4o"}
    if reasoning:
        extra["reasoning"] = reasoning
    line: dict[str, Any] = {
        "extra": extra,
        "name": name,
        "is_user": False,
        "send_date": send_date,
        "mes": mes,
        "gen_started": "2025-06-19T21:28:01.250Z",
        "gen_finished": "2025-06-19T21:28:04.870Z",
        "is_system": False,
    }
    if swipes is not None:
        line["swipe_id"] = swipes.index(mes) if swipe_id is None else swipe_id
        line["swipes"] = list(swipes)
        line["swipe_info"] = [
            {
                "send_date": send_date,
                "gen_started": "2025-06-19T21:28:01.250Z",
                "gen_finished": "2025-06-19T21:28:04.870Z",
                "extra": {"api": "openai", "model": "gpt-4o"},
            }
            for _ in swipes
        ]
    line.update(more)
    return line


def st_greeting(mes: str, *, alternates: list[str] | None = None, name: str = "Seraphina") -> dict:
    """The character's first message; its alternate greetings are swipes (shown: the first)."""
    line: dict[str, Any] = {
        "name": name,
        "is_user": False,
        "is_system": False,
        "send_date": "June 19, 2025 9:26pm",
        "mes": mes,
        "extra": {},
    }
    if alternates:
        swipes = [mes, *alternates]
        line.update(
            swipe_id=0,
            swipes=swipes,
            swipe_info=[{"send_date": "June 19, 2025 9:26pm", "extra": {}}] * len(swipes),
        )
    return line


def st_file(*lines: dict[str, Any] | str) -> bytes:
    """The lines as ST writes a chat file (a ``str`` goes in as is: a broken line)."""
    text = [
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        for line in lines
    ]
    return "\n".join(text).encode("utf-8")


def st_swipes_chat(user_name: str = "User", character_name: str = "Seraphina") -> bytes:
    """The checked-in fixture: a greeting with alternates, replies with swipes (one showing an
    earlier swipe, one its last), and reasoning; dates in the form ST writes."""
    return st_file(
        st_header(user_name=user_name, character_name=character_name),
        st_greeting(
            "Welcome to the glade, traveller.",
            alternates=["You wake by a fire.", "A wolf watches you."],
            name=character_name,
        ),
        st_user("Where am I?", name=user_name),
        st_reply(
            "In the Eldoria forest.",
            name=character_name,
            swipes=["You are safe here.", "In the Eldoria forest.", "Somewhere between dreams."],
            reasoning="They sound lost; reassure them.",
        ),
        st_user("Can you help me?", "June 19, 2025 9:31pm", name=user_name),
        st_reply("Of course. Follow me.", "June 19, 2025 9:32pm", name=character_name),
        st_user("Thank you, Seraphina.", "June 19, 2025 9:40pm", name=user_name),
        st_reply(
            "Mind the roots.",
            "June 19, 2025 9:41pm",
            name=character_name,
            swipes=["Stay close.", "Mind the roots."],
        ),
    )
