"""The prompt's budget in tokens: what each part may take, in a fixed order of priority.

The whole prompt must fit the connection's context length (``Connection.context_length``;
``CHAT_DEFAULT_CONTEXT_TOKENS`` for the demo) together with the reply, so the budget
for the prompt is

    context length - the reply's reserve (the ``max_tokens`` asked for) - a safety margin

(the margin is ``CHAT_CONTEXT_SAFETY_TOKENS``, plus ``CHAT_ESTIMATE_SAFETY_SHARE`` of the
context when tokens are estimated, not counted by the server's tokenizer).

Parts are given their tokens in this order; each later part gets only what the earlier
ones left, some only a share of it:

1. the system core (who the companion is, where, how and in which language to reply, the
   card's system prompt, a group's note) and the post-history instructions;
2. the newest messages: the user's message of this turn and what the companions before
   this one said in the turn (a continued reply's start too). A user's message too long
   for what is left is cut from its start (its end is what the reply answers);
3. the character's card text (personality, occupation, looks, backstory, scenario). If
   even that does not fit, the reply fails with ``prompt_too_large`` and says why;
4. pinned memories (at most ``CHAT_BUDGET_PINNED_SHARE`` of what is left);
5. lorebook entries (at most ``CHAT_LOREBOOK_TOKEN_BUDGET`` and
   ``CHAT_BUDGET_LORE_SHARE`` of what is left; the scanner leaves out what does not fit,
   and the prompt view lists those entries as over budget);
6. the other relevant memories (``CHAT_BUDGET_MEMORY_SHARE``);
7. the rolling summary (``CHAT_BUDGET_SUMMARY_SHARE``; its oldest paragraphs go first);
8. example dialogue (``CHAT_BUDGET_EXAMPLES_SHARE``, whole ``<START>`` blocks);
9. the history, newest first, as much as fits what is left.

Then a final check counts the assembled messages as they will be sent and drops the
oldest history, then the examples, until they fit: the prompt never overflows.

This module is arithmetic on counts; ``chat.prompt_assembly`` builds the parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from chat.tokens import TokenCounter, per_message_tokens

PARTS = (
    "system",
    "newest",
    "character",
    "pinned_memories",
    "lore",
    "memories",
    "summary",
    "examples",
    "history",
)
ELLIPSIS = "… "


class PromptTooLarge(Exception):
    """Even the parts that must go in do not fit the context."""

    def __init__(self, part: str, needed: int, available: int) -> None:
        super().__init__(f"{part} needs {needed} tokens; {available} are available")
        self.part = part
        self.needed = needed
        self.available = available


def safety_margin(context_length: int, *, estimated: bool) -> int:
    margin = int(settings.CHAT_CONTEXT_SAFETY_TOKENS)
    if estimated:
        margin += math.ceil(context_length * float(settings.CHAT_ESTIMATE_SAFETY_SHARE))
    return margin


@dataclass
class Budget:
    """Tokens given out part by part (``take``), never more than ``available``."""

    context_length: int
    reserve: int
    margin: int
    used: dict[str, int] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return max(0, self.context_length - self.reserve - self.margin)

    @property
    def left(self) -> int:
        return self.available - sum(self.used.values())

    def share(self, fraction: float) -> int:
        """``fraction`` of what is left now."""
        return max(0, math.floor(self.left * fraction))

    def fits(self, tokens: int) -> bool:
        return tokens <= self.left

    def take(self, part: str, tokens: int) -> None:
        """Charge ``tokens`` to ``part`` (callers check ``fits`` first)."""
        self.used[part] = self.used.get(part, 0) + tokens

    def give_back(self, part: str, tokens: int) -> None:
        self.used[part] = max(0, self.used.get(part, 0) - tokens)

    def parts(self) -> list[dict[str, int | str]]:
        """The allocation, for the prompt record: each part's tokens, in priority order."""
        return [{"part": name, "tokens": self.used.get(name, 0)} for name in PARTS]


def message_cost(counter: TokenCounter, content: str) -> int:
    """One message's tokens: its text and the chat template's wrapping."""
    return counter.count(content) + per_message_tokens()


def line_cost(counter: TokenCounter, line: str) -> int:
    """One line of the system message (and the newline joining it)."""
    return counter.count(line) + 1 if line else 0


def newest_first(costs: Sequence[int], limit: int) -> int:
    """How many of the last items (costs oldest first) fit ``limit`` together, newest first;
    the first that does not fit ends the run (history has no holes)."""
    total = kept = 0
    for cost in reversed(costs):
        if total + cost > limit:
            break
        total += cost
        kept += 1
    return kept


def cut_to_tokens(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The end of ``text`` within ``limit`` tokens, marked as cut; '' when nothing fits."""
    if count(text) <= limit:
        return text
    if limit <= count(ELLIPSIS) + 1:
        return ""
    low, high = 0, len(text)  # the smallest start whose tail fits
    while low < high:
        middle = (low + high) // 2
        if count(ELLIPSIS + text[middle:]) <= limit:
            high = middle
        else:
            low = middle + 1
    tail = text[low:]
    return ELLIPSIS + tail if tail else ""


def newest_paragraphs(text: str, limit: int, count: Callable[[str], int]) -> str:
    """The newest whole paragraphs of a summary within ``limit`` tokens (oldest go first)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    kept: list[str] = []
    for paragraph in reversed(paragraphs):
        candidate = "\n\n".join([paragraph, *kept])
        if count(candidate) > limit:
            break
        kept.insert(0, paragraph)
    return "\n\n".join(kept)


def first_blocks(blocks: Sequence[str], limit: int, count: Callable[[str], int], join: str) -> str:
    """The first whole example blocks within ``limit`` tokens."""
    kept: list[str] = []
    for block in blocks:
        candidate = join.join([*kept, block])
        if count(candidate) > limit:
            break
        kept.append(block)
    return join.join(kept)
