"""What the LLM is asked after a reply: a summary of older messages, and facts to remember.

Plain functions of plain values (tested without a back end). Prompts stay English whatever
the chat's language; the answers are asked for in the chat's language. The offline demo LLM
(``chat.demo_llm``) recognises each prompt by its marker and answers it offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chat.jsonout import first_json_object

SUMMARY_MARKER = "Summarise the conversation"
MEMORY_MARKER = "Extract durable facts"
# The sections of the prompts' user message, which the demo LLM reads back.
OPEN, CLOSE = "<<<", ">>>"
FACT_MAX_CHARS = 300


def _block(text: str) -> str:
    return f"{OPEN}\n{text.strip()}\n{CLOSE}"


def build_summary_messages(
    *, user_name: str, speakers: Sequence[str], previous: str, transcript: str, append_only: bool
) -> list[dict[str, str]]:
    """Ask for the summary of ``transcript`` (lines "Name: text"), folding ``previous`` in; or,
    ``append_only`` (the user edited the summary so far), a summary of the new lines alone, to
    be added after it."""
    names = ", ".join(speakers) or "the companion"
    if append_only:
        task = (
            "The summary so far was written by the user and is kept exactly as it is. Write only a "
            "short summary of the NEW messages, to be added after it; do not repeat the summary so far."
        )
    else:
        task = (
            "Write one updated summary that covers the summary so far and the new messages, "
            "replacing the summary so far."
        )
    system = (
        f"{SUMMARY_MARKER} between {user_name} and {names} for a long-running role-play chat. "
        f"{task} Write in the third person, in plain sentences, in the language the chat is "
        "written in. Keep facts, names, places, feelings, promises, decisions and open threads; "
        "leave out small talk and wording. Answer with the summary only, no heading."
    )
    content = f"Summary so far:\n{_block(previous or '(none)')}\n\nNew messages:\n{_block(transcript)}"
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


@dataclass(frozen=True)
class KnownMemory:
    id: int
    text: str


def build_memory_messages(
    *, user_name: str, companion_name: str, user_text: str, reply_text: str, known: Sequence[KnownMemory]
) -> list[dict[str, str]]:
    """Ask which durable facts the exchange holds, showing the closest memories by id so a
    fact that repeats or contradicts one replaces it."""
    system = (
        f"{MEMORY_MARKER} that {companion_name} should remember about {user_name} for weeks: facts "
        f"about {user_name} (names, family, pets, work, places, likes and dislikes, plans), about "
        f"their relationship with {companion_name}, promises made, and events that happened. "
        "Not small talk, not the scene of the moment, nothing already known unless it changed. "
        "Each fact is one short sentence in the third person that names "
        f"{user_name}, in the language the chat is written in. When a fact repeats, corrects or "
        'contradicts a known memory, give that memory\'s id as "replaces". '
        'Answer with a JSON object only: {"facts": [{"text": "...", "replaces": null}]}; '
        'with nothing worth remembering, {"facts": []}.'
    )
    listed = "\n".join(f"[{memory.id}] {memory.text}" for memory in known) or "(none)"
    content = (
        f"Known memories (id and text):\n{_block(listed)}\n\n"
        f"{user_name} wrote:\n{_block(user_text)}\n\n"
        f"{companion_name} replied:\n{_block(reply_text)}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


@dataclass(frozen=True)
class ParsedFact:
    text: str
    replaces: int | None = None


def parse_facts(raw: str, *, known_ids: set[int], limit: int) -> list[ParsedFact]:
    """The facts of the memory step's answer: at most ``limit``, each cut to ``FACT_MAX_CHARS``,
    repeats dropped; ``replaces`` only when it names a memory that was shown (a model may make
    an id up, and must never reach another memory)."""
    data = first_json_object(raw) or {}
    items = data.get("facts")
    if not isinstance(items, list):
        return []
    facts: list[ParsedFact] = []
    seen: set[str] = set()
    replaced: set[int] = set()
    for item in items:
        if len(facts) >= limit:
            break
        text_value = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text_value, str):
            continue
        text = " ".join(text_value.split())[:FACT_MAX_CHARS]
        if not text or text.casefold() in seen:
            continue
        replaces = _memory_id(item.get("replaces") if isinstance(item, dict) else None)
        if replaces not in known_ids or replaces in replaced:
            replaces = None
        if replaces is not None:
            replaced.add(replaces)
        seen.add(text.casefold())
        facts.append(ParsedFact(text, replaces))
    return facts


def _memory_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("[").rstrip("]").isdigit():
        return int(value.strip().lstrip("[").rstrip("]"))
    return None


def section(content: str, heading: str) -> str:
    """The text of the block after ``heading`` in a prompt's user message ('' when absent)."""
    start = content.find(f"{heading}\n{OPEN}\n")
    if start == -1:
        return ""
    start += len(heading) + len(OPEN) + 2
    end = content.find(f"\n{CLOSE}", start)
    return content[start : end if end != -1 else len(content)]
