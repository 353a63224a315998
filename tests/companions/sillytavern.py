"""Cards as SillyTavern writes them, for round-trip tests.

Follows SillyTavern's own writer step by step (``src/endpoints/characters.js``
``charaFormatData`` and ``unsetPrivateFields``; ``src/character-card-parser.js``
``write``), so a test can hand our import exactly the bytes SillyTavern
produces:

- the character is the V2 object with the V1 fields repeated at the top level
  (plus ``creatorcomment``, ``avatar``, ``talkativeness``, ``fav``,
  ``create_date``), ``data.extensions`` with ``talkativeness``, ``fav``,
  ``world`` and ``depth_prompt``, and ``data.group_only_greetings``;
- the PNG loses any old ``chara``/``ccv3`` tEXt chunks; then ``chara`` (the
  V2 JSON, base64) and ``ccv3`` (the same object with ``spec`` and
  ``spec_version`` set to V3, ``JSON.stringify``-ed, base64) are inserted
  just before ``IEND``, in that order;
- a JSON export is the card read back from the PNG (``ccv3`` preferred).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from typing import Any

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LOREBOOK = {
    "entries": [
        {
            "id": 0,
            "keys": ["glade", "forest"],
            "secondary_keys": [],
            "comment": "The glade",
            "content": "The glade is {{char}}'s home, hidden deep in Eldoria.",
            "constant": False,
            "selective": True,
            "insertion_order": 100,
            "enabled": True,
            "position": "before_char",
            "use_regex": True,
            "extensions": {
                "position": 0,
                "exclude_recursion": False,
                "display_index": 0,
                "probability": 100,
                "useProbability": True,
                "depth": 4,
                "selectiveLogic": 0,
                "group": "",
                "role": 0,
                "sticky": None,
                "cooldown": None,
                "delay": None,
            },
        },
        {
            "id": 1,
            "keys": ["shadowfang"],
            "secondary_keys": ["wolf"],
            "comment": "",
            "content": "Shadowfang are wolves made of smoke.",
            "constant": False,
            "selective": False,
            "insertion_order": 90,
            "enabled": True,
            "position": "after_char",
            "use_regex": True,
            "extensions": {"position": 1, "depth": 4, "probability": None, "triggers": []},
        },
    ],
    "name": "Eldoria",
}


def st_character(**fields: Any) -> dict[str, Any]:
    """The object ``charaFormatData`` saves, after ``unsetPrivateFields`` (an exported card).

    Text the way people write it in SillyTavern: Windows line ends, blank
    lines at the ends, non-ASCII; plus fields neither spec knows, inside
    ``data`` and beside it.
    """
    form = {
        "ch_name": "Seraphina",
        "description": "{{char}} is a guardian of Eldoria's forest.\r\nShe heals travellers — gently.\r\n",
        "personality": "gentle, protective, wise ",
        "scenario": "{{user}} wakes up in {{char}}'s glade after an attack.",
        "first_mes": '*Seraphina kneels beside you.*\n\n"You\'re safe now, {{user}}." 🌿\n',
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: A friend of the forest.",
        "creator_notes": "Works best with long replies.\n",
        "system_prompt": "{{original}}\nWrite in third person.",
        "post_history_instructions": "Stay gentle; never break character.",
        "tags": ["fantasy", "female", " healer "],
        "creator": "someone",
        "character_version": "1.2",
        "alternate_greetings": ["*She hums a song.*", "Oh! You're awake.\n", ""],
        "talkativeness": "0.5",
        "world": "Eldoria",
        "depth_prompt_prompt": "{{char}} never lies.",
        "depth_prompt_depth": 4,
        "group_only_greetings": ["*Seraphina greets the whole party.*"],
        **fields,
    }
    char: dict[str, Any] = {
        "name": form["ch_name"],
        "description": form["description"],
        "personality": form["personality"],
        "scenario": form["scenario"],
        "first_mes": form["first_mes"],
        "mes_example": form["mes_example"],
        "creatorcomment": form["creator_notes"],
        "avatar": "none",
        "talkativeness": form["talkativeness"],
        "fav": False,
        "tags": form["tags"],
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": form["ch_name"],
            "description": form["description"],
            "personality": form["personality"],
            "scenario": form["scenario"],
            "first_mes": form["first_mes"],
            "mes_example": form["mes_example"],
            "creator_notes": form["creator_notes"],
            "system_prompt": form["system_prompt"],
            "post_history_instructions": form["post_history_instructions"],
            "tags": form["tags"],
            "creator": form["creator"],
            "character_version": form["character_version"],
            "alternate_greetings": form["alternate_greetings"],
            "extensions": {
                "talkativeness": form["talkativeness"],
                "fav": False,
                "world": form["world"],
                "depth_prompt": {"prompt": form["depth_prompt_prompt"], "depth": 4, "role": "system"},
                "regex_scripts": [{"scriptName": "trim", "findRegex": "/\\s+$/", "replaceString": ""}],
                "another_tool": {"nested": [1, 2.5, None, True]},
            },
            "group_only_greetings": form["group_only_greetings"],
            "character_book": LOREBOOK,
            "x_unknown_in_data": {"kept": "as is"},
        },
        "create_date": "2026-11-30 @21h 31m 25s 123ms",
        "x_unknown_at_top": ["kept", 1],
    }
    return char


def st_v3(char: dict[str, Any]) -> dict[str, Any]:
    """What ``write`` puts in ``ccv3``: the same object, ``spec`` and ``spec_version`` replaced."""
    return {**char, "spec": "chara_card_v3", "spec_version": "3.0"}


def js_stringify(obj: Any) -> str:
    """``JSON.stringify``: no spaces, non-ASCII as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        chunks.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _encode(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [PNG_SIGNATURE]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def st_write(image: bytes, data: str) -> bytes:
    """``character-card-parser.js`` ``write(image, data)``, step by step."""
    chunks = [
        (kind, body)
        for kind, body in _chunks(image)
        if not (kind == b"tEXt" and body.partition(b"\0")[0].decode("latin-1").lower() in ("chara", "ccv3"))
    ]
    chunks.insert(len(chunks) - 1, (b"tEXt", b"chara\0" + base64.b64encode(data.encode("utf-8"))))
    v3 = json.loads(data)
    v3["spec"] = "chara_card_v3"
    v3["spec_version"] = "3.0"
    chunks.insert(len(chunks) - 1, (b"tEXt", b"ccv3\0" + base64.b64encode(js_stringify(v3).encode("utf-8"))))
    return _encode(chunks)


def st_png(char: dict[str, Any], *, size: tuple[int, int] = (40, 30)) -> bytes:
    """A card PNG as SillyTavern saves one: an avatar, then ``write`` with the character's JSON."""
    out = io.BytesIO()
    Image.new("RGB", size, (30, 140, 90)).save(out, format="PNG")
    return st_write(out.getvalue(), js_stringify(char))
