"""A reply's prompt: the system prompt, lore, memories, summary and history, within budget.

One path for a one-to-one chat and a group: what differs is data (a group's lines are
labelled "Name: text" and its system prompt carries a note naming the others).

``assemble`` is the rules, on plain values: which parts go in, in the budget's priority
order (``chat.budget``), where lore entries go (``before_char``/``after_char`` entries in
the system prompt around the character's text, ``at_depth`` ones as system messages that
many messages from the end of the history), and the prompt record the owner's prompt
view shows. ``prompt_for_run`` reads what ``assemble`` needs for a pipeline run: the
history after the rolling summary, the greeting, the lorebooks that apply to the speaker
(its own, its card's and the conversation's), and the memories relevant to the newest
messages (by embedding when the connection makes them, else full text).

Lore and memories are extras: a lorebook or memory lookup that fails is logged and the
reply goes on without it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings

from chat import budget as budgeting
from chat import embeddings, prompts
from chat.budget import Budget, PromptTooLarge, line_cost, message_cost
from chat.models import Conversation, PipelineRun
from chat.selectors import HistoryRow, conversation_greeting, conversation_members, llm_history
from chat.tokens import ESTIMATE, REPLY_PRIMING_TOKENS, Counter, TokenCounter, messages_tokens
from companions.models import Companion
from lorebooks import scanning
from lorebooks import selectors as lore_selectors
from lorebooks.scanning import AT_DEPTH, Fired, ScanBook
from memories import retrieval
from memories.retrieval import Recalled

log = structlog.get_logger(__name__)

__all__ = ["AssembledPrompt", "Line", "PromptInput", "PromptTooLarge", "assemble", "prompt_for_run"]

QUERY_MAX_CHARS = 2000  # of the newest messages, as the memory query


@dataclass(frozen=True)
class Line:
    """A history message as it is sent: ``role`` and ``content`` (labelled in a group);
    ``from_user`` says whether the user wrote it (the newest of those starts the turn)."""

    id: int
    role: str
    content: str
    from_user: bool


# Memories for a budget of tokens, counted by the given counter (retrieval stays outside the
# rules, so tests and the bench hand in their own).
Recall = Callable[[int, TokenCounter], list[Recalled]]


def _no_memories(budget_tokens: int, counter: TokenCounter) -> list[Recalled]:
    return []


@dataclass
class PromptInput:
    companion: Companion
    user_name: str
    history: list[Line]  # after the summary, oldest first
    others: list[str] | None = None  # a group's other companions; None: one-to-one
    older_id: int | None = None  # the newest message older than ``history`` (not fetched)
    greeting: str = ""
    summary: str = ""
    books: list[ScanBook] = field(default_factory=list)
    recall: Recall = _no_memories
    continuing: str | None = None  # a continued reply's start
    rng: random.Random | None = None


@dataclass
class AssembledPrompt:
    messages: list[dict[str, str]]
    record: dict[str, Any]
    tokens: int
    history_start_id: int | None
    dropped_upto_id: int | None
    embedding_tokens: int = 0  # what the memory query's embedding cost (charged to the run)


def _fired_record(fired: Fired) -> dict[str, Any]:
    return {
        "book": fired.book_name,
        "uid": fired.uid,
        "comment": fired.comment,
        "reason": fired.reason,
        "tokens": fired.tokens,
        "position": fired.position,
        "depth": fired.depth,
    }


def _lore_cost(fired: Sequence[Fired], counter: TokenCounter) -> int:
    """The fired entries' tokens as placed: each text, and one fence per block or message."""
    if not fired:
        return 0
    fence = counter.count(prompts.WORLD_INFO_OPEN) + counter.count(prompts.WORLD_INFO_CLOSE) + 3
    blocks = {(f.position, f.depth if f.position == AT_DEPTH else 0) for f in fired}
    depth_messages = sum(1 for position, _ in blocks if position == AT_DEPTH)
    return (
        sum(f.tokens + 2 for f in fired)
        + fence * len(blocks)
        + depth_messages * budgeting.per_message_tokens()
    )


def _scan(inp: PromptInput, counter: TokenCounter, limit: int) -> scanning.ScanResult:
    fence_room = 3 * (counter.count(prompts.WORLD_INFO_OPEN) + counter.count(prompts.WORLD_INFO_CLOSE) + 3)
    if not inp.books or limit - fence_room <= 0:
        return scanning.ScanResult()
    always = [text for text in (inp.greeting, inp.summary) if text]
    try:
        return scanning.scan(
            inp.books,
            messages=[line.content for line in inp.history],
            always_scanned=always,
            char=inp.companion.name,
            user=inp.user_name,
            budget_tokens=limit - fence_room,
            count_tokens=counter.count,
            rng=inp.rng,
        )
    except Exception:  # a bad book costs its lore, never the reply
        log.exception("lore_scan_failed", companion_id=inp.companion.pk)
        return scanning.ScanResult()


def _with_depth_lore(history: list[dict[str, str]], fired: Sequence[Fired]) -> list[dict[str, str]]:
    """``at_depth`` entries as system messages ``depth`` messages from the end of the history
    (0: after the last message; deeper than the history: before its first), one per depth."""
    by_depth: dict[int, list[str]] = {}
    for entry in fired:
        if entry.position == AT_DEPTH:
            by_depth.setdefault(max(0, entry.depth), []).append(entry.text)
    at: dict[int, list[int]] = {}
    for depth in sorted(by_depth, reverse=True):  # deeper first where two land on one place
        at.setdefault(max(0, len(history) - depth), []).append(depth)
    placed: list[dict[str, str]] = []
    for index in range(len(history) + 1):
        for depth in at.get(index, ()):
            placed.append({"role": "system", "content": prompts.lore_block(by_depth[depth])})
        if index < len(history):
            placed.append(history[index])
    return placed


def assemble(inp: PromptInput, *, counter: Counter, context_length: int, reserve: int) -> AssembledPrompt:
    """The messages to send and their record, never over ``context_length - reserve``.

    Raises ``PromptTooLarge`` when the core, the newest message or the character's text
    cannot fit (see ``chat.budget`` for the order).
    """
    count = counter.count
    companion, user_name = inp.companion, inp.user_name
    parts = prompts.system_parts(companion, user_name=user_name, others=inp.others)
    counter.prime(
        [line.content for line in inp.history]
        + [*parts.head, *parts.character, *parts.tail, parts.system_prompt, parts.examples, inp.summary]
    )
    estimated = getattr(counter, "kind", ESTIMATE) == ESTIMATE
    budget = Budget(context_length, reserve, budgeting.safety_margin(context_length, estimated=estimated))

    # (1) the core, the post-history instructions, a continued reply's start
    post = prompts.post_history(companion, user_name=user_name)
    trailing: list[dict[str, str]] = []
    if inp.continuing is not None:
        trailing = [
            {"role": "assistant", "content": inp.continuing},
            {"role": "user", "content": prompts.CONTINUE_PROMPT},
        ]
    core_lines = [*parts.head, *parts.tail, parts.system_prompt, parts.group_note]
    core = sum(line_cost(counter, line) for line in core_lines) + budgeting.per_message_tokens()
    core += sum(message_cost(counter, m["content"]) for m in post + trailing) + REPLY_PRIMING_TOKENS
    if core > budget.available:
        raise PromptTooLarge("system", core, budget.available)
    budget.take("system", core)

    # (2) the newest messages: the user's message of this turn and what came after it
    starts = [index for index, line in enumerate(inp.history) if line.from_user]
    split = starts[-1] if starts else max(0, len(inp.history) - 1)
    older, newest = list(inp.history[:split]), list(inp.history[split:])
    newest_costs = [message_cost(counter, line.content) for line in newest]
    while newest and sum(newest_costs) > budget.left and len(newest) > 1:
        del newest[1], newest_costs[1]  # the turn's earlier replies give way to the user's message
    character = sum(line_cost(counter, line) for line in parts.character)
    if newest and newest_costs[0] > budget.left:
        # Cut to what the character's text leaves (it comes next), or half of what is left.
        room = max(budget.left // 2, budget.left - character) - budgeting.per_message_tokens()
        first = newest[0]
        cut = budgeting.cut_to_tokens(first.content, room, count)
        if not cut:
            raise PromptTooLarge("newest", newest_costs[0], budget.left)
        newest[0] = Line(first.id, first.role, cut, first.from_user)
        newest_costs[0] = message_cost(counter, cut)
    budget.take("newest", sum(newest_costs))

    # (3) the character's card text
    if not budget.fits(character):
        raise PromptTooLarge("character", character, budget.left)
    budget.take("character", character)

    # (4) pinned memories, (5) lore, (6) the other memories
    memory_room = min(
        budget.left,
        budget.share(float(settings.CHAT_BUDGET_PINNED_SHARE) + float(settings.CHAT_BUDGET_MEMORY_SHARE)),
    )
    recalled = inp.recall(memory_room, counter) if memory_room > 0 else []
    header = line_cost(counter, prompts.memories_block(["x"], user_name=user_name).split("\n")[0])
    used_memories: list[Recalled] = []

    def add_memories(candidates: Sequence[Recalled], cap: int, part: str) -> None:
        spent = 0
        for memory in candidates:
            cost = line_cost(counter, f"- {memory.text}") + (0 if used_memories else header)
            if spent + cost > cap or not budget.fits(cost):
                continue
            used_memories.append(memory)
            spent += cost
            budget.take(part, cost)

    add_memories(
        [m for m in recalled if m.pinned], budget.share(settings.CHAT_BUDGET_PINNED_SHARE), "pinned_memories"
    )
    lore_limit = min(int(settings.CHAT_LOREBOOK_TOKEN_BUDGET), budget.share(settings.CHAT_BUDGET_LORE_SHARE))
    scanned = _scan(inp, counter, lore_limit) if lore_limit > 0 else scanning.ScanResult()
    fired = list(scanned.fired)
    over_budget = list(scanned.over_budget)
    while fired and not budget.fits(_lore_cost(fired, counter)):
        over_budget.append(fired.pop())
    budget.take("lore", _lore_cost(fired, counter))
    add_memories(
        [m for m in recalled if not m.pinned], budget.share(settings.CHAT_BUDGET_MEMORY_SHARE), "memories"
    )

    # (7) the rolling summary
    summary = ""
    if inp.summary.strip():
        room = budget.share(settings.CHAT_BUDGET_SUMMARY_SHARE)
        wrapper = message_cost(counter, prompts.summary_message("").get("content", ""))
        summary = budgeting.newest_paragraphs(inp.summary.strip(), room - wrapper, count)
        if summary:
            budget.take("summary", message_cost(counter, prompts.summary_message(summary)["content"]))

    # (8) example dialogue
    examples = ""
    if parts.examples:
        room = budget.share(settings.CHAT_BUDGET_EXAMPLES_SHARE) - line_cost(
            counter, prompts.examples_line("")
        )
        blocks = [b.strip() for b in parts.examples.split("\n\n") if b.strip()]
        examples = budgeting.first_blocks(blocks, room, count, "\n\n")
        if examples:
            budget.take("examples", line_cost(counter, prompts.examples_line(examples)))

    # (9) the history, newest first
    older_costs = [message_cost(counter, line.content) for line in older]
    kept = budgeting.newest_first(older_costs, budget.left)

    in_system = [f for f in fired if f.position != AT_DEPTH]
    memories_text = prompts.memories_block([m.text for m in used_memories], user_name=user_name)

    def build() -> list[dict[str, str]]:
        system = parts.render(lore=in_system, memories=memories_text, examples=examples)
        messages = [{"role": "system", "content": system}]
        if summary:
            messages.append(prompts.summary_message(summary))
        lines = older[len(older) - kept :] + newest
        history = [{"role": line.role, "content": line.content} for line in lines if line.content]
        return messages + _with_depth_lore(history, fired) + post + trailing

    # The final check: the messages as sent, counted; the oldest history, then the examples,
    # give way until they fit.
    messages = build()
    total = messages_tokens(counter, messages)
    while total > budget.available:
        if kept:
            kept -= 1
        elif examples:
            budget.give_back("examples", budget.used.get("examples", 0))
            examples = ""
        else:
            raise PromptTooLarge("prompt", total, budget.available)
        messages = build()
        total = messages_tokens(counter, messages)
    budget.used["history"] = sum(older_costs[len(older) - kept :])

    kept_lines = older[len(older) - kept :] + newest
    dropped_upto_id = older[len(older) - kept - 1].id if kept < len(older) else inp.older_id
    history_start_id = kept_lines[0].id if kept_lines else None
    record: dict[str, Any] = {
        "messages": messages,
        "parts": budget.parts(),
        "context_length": context_length,
        "reserve": reserve,
        "margin": budget.margin,
        "total": total,
        "counter": getattr(counter, "kind", ESTIMATE),
        "lore": [_fired_record(f) for f in fired],
        "lore_over_budget": [_fired_record(f) for f in over_budget],
        "memories": [
            {"id": m.memory_id, "text": m.text, "score": round(m.score, 4), "pinned": m.pinned}
            for m in used_memories
        ],
        "summary_used": bool(summary),
        "history_start_id": history_start_id,
        "dropped_upto_id": dropped_upto_id,
    }
    return AssembledPrompt(messages, record, total, history_start_id, dropped_upto_id)


# --- what a pipeline run reads ------------------------------------------------------------


def _lines(rows: Sequence[HistoryRow], *, companion: Companion, user_name: str, group: bool) -> list[Line]:
    if not group:
        return [Line(row.id, row.role, row.content, row.role == "user") for row in rows]
    return [
        Line(
            row.id,
            "assistant" if row.sender_id == companion.pk else "user",
            prompts.label_line(row.sender_name or user_name, row.content),
            row.role == "user",
        )
        for row in rows
    ]


def book_ids_for(companion: Companion, conversation: Conversation) -> list[int]:
    """The lorebooks that apply to ``companion``'s replies in ``conversation``: its own (its
    card's first), then the conversation's (a group's apply to every speaker). Another
    companion's own books never apply here."""
    ids: list[int] = [companion.card_book_id] if companion.card_book_id else []
    ids += companion.lorebooks.order_by("pk").values_list("pk", flat=True)
    ids += conversation.lorebooks.order_by("pk").values_list("pk", flat=True)
    return list(dict.fromkeys(ids))


def _books(owner_id: int, ids: list[int], companion_id: int) -> list[ScanBook]:
    if not ids:
        return []
    try:
        return lore_selectors.scan_books(owner_id, ids)
    except Exception:
        log.exception("lorebooks_unavailable", companion_id=companion_id)
        return []


@dataclass
class _Recaller:
    """Memories relevant to the newest messages: embedded once, retrieved for a budget."""

    owner_id: int
    companion_id: int
    query: str
    embedding_tokens: int = 0

    def __call__(self, budget_tokens: int, counter: TokenCounter) -> list[Recalled]:
        if not self.query:
            return []
        try:
            # Most companions remember nothing yet: no query embedding (an LLM call) for them.
            if not retrieval.remembers_anything(owner_id=self.owner_id, companion_id=self.companion_id):
                return []
        except Exception:
            log.exception("memory_retrieval_failed", companion_id=self.companion_id)
            return []
        try:
            embedded = embeddings.embed_texts(self.companion_id, [self.query])
        except Exception:
            log.exception("memory_embedding_failed", companion_id=self.companion_id)
            embedded = None
        vector = embedded.vectors[0] if embedded is not None and embedded.vectors else None
        if embedded is not None:
            self.embedding_tokens += embedded.prompt_tokens
        try:
            return retrieval.relevant_memories(
                owner_id=self.owner_id,
                companion_id=self.companion_id,
                query_text=self.query,
                query_vector=vector,
                embedding_model=embedded.model if embedded is not None and vector is not None else "",
                budget_tokens=budget_tokens,
                count_tokens=counter.count,
                limit=int(settings.CHAT_MEMORY_LIMIT),
            )
        except Exception:  # memories are an extra: the reply goes on without them
            log.exception("memory_retrieval_failed", companion_id=self.companion_id)
            return []


def prompt_for_run(
    run: PipelineRun,
    companion: Companion,
    *,
    user_name: str,
    counter: Counter,
    context_length: int,
    reserve: int,
    continuing: str | None = None,
) -> AssembledPrompt:
    """The prompt of ``run``'s reply, written by ``companion`` (loaded with its card)."""
    conversation = run.conversation
    limit = int(settings.CHAT_HISTORY_FETCH)
    rows = llm_history(
        conversation.pk, exclude_id=run.reply_id, after_id=conversation.summary_upto_id, limit=limit + 1
    )
    older_id = rows[0].id if len(rows) > limit else None
    rows = rows[-limit:] if len(rows) > limit else rows
    group = conversation.is_group
    lines = _lines(rows, companion=companion, user_name=user_name, group=group)
    others = [c.name for c in conversation_members(conversation) if c.pk != companion.pk] if group else None
    query_rows = rows[-int(settings.CHAT_MEMORY_QUERY_MESSAGES) :]
    query = "\n".join(row.content for row in query_rows)[-QUERY_MAX_CHARS:]
    recaller = _Recaller(companion.owner_id, companion.pk, query)
    inp = PromptInput(
        companion=companion,
        user_name=user_name,
        history=lines,
        others=others,
        older_id=older_id,
        greeting=conversation_greeting(conversation.pk),
        summary=conversation.summary,
        books=_books(companion.owner_id, book_ids_for(companion, conversation), companion.pk),
        recall=recaller,
        continuing=continuing,
    )
    assembled = assemble(inp, counter=counter, context_length=context_length, reserve=reserve)
    assembled.embedding_tokens = recaller.embedding_tokens
    return assembled
