"""Lorebook files as SillyTavern writes them: a World Info file saved by its editor (every
field of ``newWorldInfoEntryDefinition``) and a card's ``character_book`` as its export embeds
it (``convertWorldInfoToCharacterBook``)."""

from __future__ import annotations

import copy
from typing import Any


def st_entry(uid: int, **fields: Any) -> dict[str, Any]:
    """An entry the way SillyTavern's World Info editor saves it."""
    entry: dict[str, Any] = {
        "uid": uid,
        "key": [],
        "keysecondary": [],
        "comment": "",
        "content": "",
        "constant": False,
        "vectorized": False,
        "selective": True,
        "selectiveLogic": 0,
        "addMemo": True,
        "order": 100,
        "position": 0,
        "disable": False,
        "ignoreBudget": False,
        "excludeRecursion": False,
        "preventRecursion": False,
        "matchPersonaDescription": False,
        "matchCharacterDescription": False,
        "matchCharacterPersonality": False,
        "matchCharacterDepthPrompt": False,
        "matchScenario": False,
        "matchCreatorNotes": False,
        "delayUntilRecursion": False,
        "probability": 100,
        "useProbability": True,
        "depth": 4,
        "outletName": "",
        "group": "",
        "groupOverride": False,
        "groupWeight": 100,
        "scanDepth": None,
        "caseSensitive": None,
        "matchWholeWords": None,
        "useGroupScoring": None,
        "automationId": "",
        "role": None,
        "sticky": 0,
        "cooldown": 0,
        "delay": 0,
        "triggers": [],
        "displayIndex": uid,
    }
    entry.update(fields)
    return entry


WORLD_INFO: dict[str, Any] = {
    "entries": {
        "0": st_entry(
            0,
            key=["Eldoria", "the kingdom"],
            comment="Eldoria",
            content="Eldoria is a kingdom of rivers; its capital is Veyra.",
            order=100,
        ),
        "1": st_entry(
            1,
            key=["Veyra"],
            comment="Veyra (recursive)",
            content="Veyra's harbour is guarded by the Shadowfang.",
            excludeRecursion=True,
            position=1,
            order=90,
        ),
        "2": st_entry(
            2,
            key=["/shadow ?fang(s)?/i"],
            keysecondary=["wolf", "smoke"],
            selectiveLogic=3,
            comment="Shadowfang (regex, AND ALL)",
            content="Shadowfang are wolves made of smoke.",
            position=4,
            depth=2,
            role=1,
            probability=60,
            group="beasts",
            groupWeight=50,
            sticky=2,
            cooldown=3,
            caseSensitive=True,
            matchWholeWords=False,
            preventRecursion=True,
        ),
        "3": st_entry(
            3,
            key=[],
            comment="Always on",
            content="The year is 1203 of the Second Age.",
            constant=True,
            position=2,  # top of the Author's Note: no column of ours
            order=5,
        ),
        "7": st_entry(
            7,
            key=["moon"],
            keysecondary=["night"],
            selectiveLogic=2,
            comment="Disabled, not selective, odd values",
            content="The moon has two faces.",
            disable=True,
            selective=False,
            probability=30,
            useProbability=False,
            position=7,
            outletName="sky",
            displayIndex=4,
            automationId="moon-1",
            x_unknown={"kept": ["as", "is"]},
        ),
    },
    "name": "Eldoria",
    "x_book_field": 42,
}


def world_info() -> dict[str, Any]:
    return copy.deepcopy(WORLD_INFO)


CARD_BOOK: dict[str, Any] = {
    "name": "Eldoria (card)",
    "description": "What the card knows",
    "scan_depth": 6,
    "token_budget": 512,
    "recursive_scanning": True,
    "extensions": {"x_tool": {"a": 1}},
    "entries": [
        {
            "id": 4,
            "keys": ["glade", "forest"],
            "secondary_keys": [],
            "comment": "The glade",
            "content": "The glade is {{char}}'s home.",
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
                "prevent_recursion": False,
                "scan_depth": None,
                "match_whole_words": None,
                "case_sensitive": None,
                "role": 0,
                "sticky": None,
                "cooldown": None,
                "delay": None,
                "triggers": [],
            },
        },
        {
            "keys": ["shadowfang (pack)"],
            "secondary_keys": ["wolf"],
            "content": "Shadowfang are wolves made of smoke.",
            "insertion_order": 90,
            "enabled": False,
            "case_sensitive": True,
            "name": "Shadowfang",
            "priority": 5,
            "position": "after_char",
            "use_regex": True,
            "extensions": {"position": 4, "depth": 1, "probability": None, "x_other": "kept"},
        },
        {
            "id": 9,
            "keys": ["harbour"],
            "content": "The harbour never freezes.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 10,
            "x_entry_field": [1, 2],
        },
    ],
}


def card_book() -> dict[str, Any]:
    return copy.deepcopy(CARD_BOOK)
