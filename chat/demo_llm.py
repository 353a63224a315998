"""The offline demo LLM: no network, no model, clearly not real AI.

Used only when no LLM is configured (the embedded default), so a fresh
checkout can chat. It speaks the same small interface as
``chat.llm.OpenAIChatClient``: ``complete`` answers the scene analysis with
well-formed JSON guessed from keywords (and the memory work's summaries and
facts from the words of the chat), ``stream_chat`` (and ``astream_chat``, on an
event loop) streams a short
in-character reply word by word at a readable pace (a different one for each
version of a reply written again, and a story told in parts that stop at the
length limit, so *Again* and *Continue* can be tried offline), and ``embed`` gives
deterministic embeddings (hashed words and character trigrams, so sentences
that share words are close) in the ``/v1/embeddings`` wire shape, so memory
retrieval runs offline too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

from chat.llm import HEARTBEAT_SECONDS, AsyncStreamMixin, Completion, estimate_tokens
from chat.memory_prompts import MEMORY_MARKER, SUMMARY_MARKER, section
from chat.prompts import ANALYSIS_MARKER, CONTINUE_PROMPT

LOCATIONS = {
    "beach": "at the beach", "park": "in the park", "kitchen": "in the kitchen", "bedroom": "in the bedroom",
    "cafe": "at a cozy café", "café": "at a cozy café", "coffee": "at a cozy café", "office": "at the office",
    "gym": "at the gym", "restaurant": "at a restaurant", "bar": "at a quiet bar", "forest": "in the forest",
    "pool": "by the pool", "library": "in the library", "garden": "in the garden", "city": "in the city",
    "home": "at home", "living room": "in the living room", "mountain": "in the mountains",
}  # fmt: skip
OUTFITS = {
    "swim": "a bright swimsuit", "bikini": "a bright swimsuit", "pajama": "soft pajamas",
    "dress": "an elegant dress", "jeans": "jeans and a T-shirt", "hoodie": "a cozy hoodie",
    "suit": "a sharp suit", "coat": "a warm coat", "sport": "sportswear", "gym": "sportswear",
}  # fmt: skip
ACTIONS = {
    "dance": "dancing", "cook": "cooking", "read": "reading a book", "walk": "taking a walk",
    "sleep": "getting ready for bed", "eat": "having a meal", "drink": "sipping a drink",
    "swim": "swimming", "run": "jogging", "sing": "singing softly", "hug": "hugging you",
    "sit": "sitting down", "relax": "relaxing", "play": "playing a game", "work": "working",
}  # fmt: skip
# Whole words and phrases only: "picnic", "epic" or "topic" ask for no picture.
IMAGE_WORDS = re.compile(
    r"\b(?:pictures?|pics?|photos?|photograph|selfies?|snapshot|show me|see you)\b", re.IGNORECASE
)
# A request for a story gets one told in parts, each stopping at the length limit.
STORY_WORDS = re.compile(r"\b(?:story|stories|tale|tales)\b", re.IGNORECASE)
STORY_PART_WORDS = 60
STORY = (
    "*settles in beside you and smiles* Once upon a time, {user}, in a little town by the sea, there lived "
    "a lighthouse keeper who talked to the waves every evening. The waves never answered, of course, but "
    "one stormy night a bottle washed up on the rocks with a letter inside. The letter was addressed to "
    "the keeper by name, in handwriting he had not seen since he was a boy. *lowers voice* It said: "
    '"Keep the light burning until I come home." So he did, night after night, through every storm and '
    "every calm, polishing the great lamp and watching the horizon. Years went by. The town grew, the "
    "harbour filled with new boats, and the children who had laughed at the old keeper grew up and "
    "brought their own children to hear his stories. Then, one clear spring morning, a small sailboat "
    "came around the point, its sail patched a hundred times. *smiles softly* The woman at the helm waved, "
    "and the keeper knew her at once: his sister, who had sailed away to see the world and had followed "
    "his light all the way home. And that, {user}, is why I always leave a light on for you."
)

OPENERS = (
    "*smiles warmly* ",
    "*tilts head, curious* ",
    "*laughs softly* ",
    "*leans closer* ",
)
MIDDLES = (
    "I love that you told me that, {user}.",
    "That sounds wonderful, {user}, tell me more.",
    "You always know how to make me smile, {user}.",
    "Mm, I was just thinking about you, {user}.",
)
CLOSERS = (
    " Right now I'm {action} {location}, so your timing is perfect.",
    " I'm {location}, {action}, and I'd love some company.",
    " What should we do next?",
    " Stay a little longer with me?",
)


def _field(text: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}:\s*(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def analyze(prompt: str) -> dict[str, object]:
    """The scene after a message, from keywords; unchanged values stay as they are."""
    match = re.search(r"New message from [^:]*:\s*(.*)", prompt, re.DOTALL)
    message = (match.group(1) if match else prompt).lower()
    state = {
        "outfit": _field(prompt, "Current outfit") or "casual clothes",
        "location": _field(prompt, "Current location") or "at home",
        "action": _field(prompt, "Current action") or "relaxing",
        "wants_image": IMAGE_WORDS.search(message) is not None,
    }
    for table, key in ((LOCATIONS, "location"), (OUTFITS, "outfit"), (ACTIONS, "action")):
        for word, value in table.items():
            if re.search(rf"\b{re.escape(word)}", message):
                state[key] = value
                break
    return state


EMBEDDING_DIMS = 256
EMBEDDING_MODEL = "demo-hashed-trigrams-256"
_WORD = re.compile(r"\w+")
# Sentences the demo remembers: the user telling something about themselves.
_FACT_SENTENCE = re.compile(
    r"\b(my|i am|i'm|i have|i live|i work|i like|i love|i hate|i promise|we)\b", re.IGNORECASE
)


def _bucket(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % EMBEDDING_DIMS, 1.0 if digest[4] & 1 else -1.0


def embed_text(text: str) -> list[float]:
    """A unit vector of hashed features: each word (weight 1) and each character trigram of
    each word (weight 0.5). The same text always gives the same vector."""
    vector = [0.0] * EMBEDDING_DIMS
    for word in _WORD.findall(text.lower()):
        index, sign = _bucket("w:" + word)
        vector[index] += sign
        padded = f" {word} "
        for start in range(len(padded) - 2):
            index, sign = _bucket("t:" + padded[start : start + 3])
            vector[index] += 0.5 * sign
    norm = math.sqrt(sum(value * value for value in vector))
    if not norm:  # no words at all: a fixed unit vector, never zeros (no NaN downstream)
        return [1.0] + [0.0] * (EMBEDDING_DIMS - 1)
    return [value / norm for value in vector]


def summarize(content: str, *, max_chars: int) -> str:
    """The summary prompt's answer: the summary so far, then the gist of each new line."""
    previous = section(content, "Summary so far:").strip()
    lines = [line.strip() for line in section(content, "New messages:").splitlines() if line.strip()]
    gists = []
    for line in lines:
        speaker, _, said = line.partition(": ")
        sentence = re.split(r"(?<=[.!?])\s", said.strip(), maxsplit=1)[0][:120]
        gists.append(f"{speaker} said: {sentence}" if said else line[:120])
    parts = ([] if previous in ("", "(none)") else [previous]) + gists
    return " ".join(parts)[-max_chars:].strip()


def remember(system: str, content: str) -> dict[str, object]:
    """The memory prompt's answer: each sentence of the user's message that tells something
    about them, as a fact; one that shares most of its words with a known memory replaces it."""
    names = re.search(r"about (.+?) for weeks", system)
    user = names.group(1) if names else "The user"
    said = section(content, f"{user} wrote:")
    known = re.findall(r"^\[(\d+)\] (.*)$", section(content, "Known memories (id and text):"), re.MULTILINE)
    facts = []
    for sentence in re.split(r"(?<=[.!?])\s+", said):
        sentence = sentence.strip()
        if not sentence or not _FACT_SENTENCE.search(sentence):
            continue
        text = f"{user} said: {sentence}"
        words = set(_WORD.findall(sentence.lower()))
        replaces = None
        for memory_id, memory_text in known:
            theirs = set(_WORD.findall(memory_text.lower()))
            if words and len(words & theirs) >= max(2, len(words) * 2 // 3):
                replaces = int(memory_id)
                break
        facts.append({"text": text, "replaces": replaces})
    return {"facts": facts[:5]}


class _DemoReply:
    """What the sync and the async demo streams share: the words, and the result they make."""

    def __init__(self, words: list[str], *, delay: float, prompt_chars: int, truncated: bool = False) -> None:
        self._finish_reason = "length" if truncated else "stop"
        self._words = words
        self._delay = delay
        self._prompt_chars = prompt_chars
        self._text: list[str] = []
        self._result: Completion | None = None

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        return ""  # the demo does not think

    @property
    def result(self) -> Completion:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    def _finish(self) -> None:
        text = self.text
        self._result = Completion(
            text=text,
            finish_reason=self._finish_reason,
            prompt_tokens=max(1, self._prompt_chars // 4),
            completion_tokens=estimate_tokens(text),
            usage_estimated=True,
        )


class DemoStream(_DemoReply):
    def __init__(self, words: list[str], *, delay: float, prompt_chars: int, truncated: bool = False) -> None:
        super().__init__(words, delay=delay, prompt_chars=prompt_chars, truncated=truncated)
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def __iter__(self) -> Iterator[str]:
        return self.pieces()

    def pieces(self, heartbeat: Callable[[], None] | None = None) -> Iterator[str]:
        """As ``ChatStream.pieces``: ``heartbeat`` is called on a clock while words come."""
        last_beat = time.monotonic()
        for word in self._words:
            if self._closed.is_set():
                return
            if self._delay:
                time.sleep(self._delay)
            if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                heartbeat()
            self._text.append(word)
            yield word
        self._finish()


class AsyncDemoStream(_DemoReply, AsyncStreamMixin):
    """``DemoStream`` on an event loop, as ``chat.llm.AsyncChatStream``: the same words at the
    same pace, waiting with ``asyncio.sleep`` so a thousand demo replies share one loop."""

    _closed = False

    async def aclose(self) -> None:
        self._closed = True

    async def pieces(
        self, heartbeat: Callable[[], Awaitable[None] | None] | None = None
    ) -> AsyncIterator[str]:
        last_beat = time.monotonic()
        for word in self._words:
            if self._closed:
                return
            if self._delay:
                await asyncio.sleep(self._delay)
            if heartbeat is not None and time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                if (beat := heartbeat()) is not None:
                    await beat
            self._text.append(word)
            yield word
        self._finish()


class DemoLLM:
    """Offline stand-in for an OpenAI-compatible server."""

    name = "demo"

    def __init__(self, *, token_delay: float = 0.04) -> None:
        self.token_delay = token_delay

    def complete(self, messages: list[dict], *, max_tokens: int, temperature: float) -> Completion:
        system = messages[0].get("content", "") if messages else ""
        prompt = messages[-1].get("content", "") if messages else ""
        if SUMMARY_MARKER in system:
            text = summarize(prompt, max_chars=max(max_tokens, 1) * 4)
        elif MEMORY_MARKER in system:
            text = json.dumps(remember(system, prompt))
        elif ANALYSIS_MARKER in system:
            text = json.dumps(analyze(prompt))
        else:
            text = self._reply(messages)
        return Completion(text, "stop", estimate_tokens(prompt), estimate_tokens(text), usage_estimated=True)

    def embed(self, texts: list[str], *, model: str, timeout: tuple[float, float]) -> dict[str, object]:
        """As ``OpenAIChatClient.embed``: the ``/v1/embeddings`` answer, computed offline."""
        return {
            "object": "list",
            "model": EMBEDDING_MODEL,
            "data": [
                {"object": "embedding", "index": i, "embedding": embed_text(t)} for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": sum(estimate_tokens(t) for t in texts)},
        }

    def stream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> DemoStream:
        """``avoid``: the earlier versions of the reply being written again; the demo picks a
        reply that is none of them (it has no randomness of its own). A story stops after
        ``STORY_PART_WORDS`` words (or ``max_tokens``) with finish reason "length"; a continued
        reply goes on from where its start stopped."""
        words, truncated, chars = self._plan(messages, max_tokens=max_tokens, avoid=avoid)
        return DemoStream(words, delay=self.token_delay, prompt_chars=chars, truncated=truncated)

    async def astream_chat(
        self, messages: list[dict], *, max_tokens: int, temperature: float, avoid: Sequence[str] = ()
    ) -> AsyncDemoStream:
        """``stream_chat`` on an event loop: the same reply, word for word."""
        words, truncated, chars = self._plan(messages, max_tokens=max_tokens, avoid=avoid)
        return AsyncDemoStream(words, delay=self.token_delay, prompt_chars=chars, truncated=truncated)

    def _plan(
        self, messages: list[dict], *, max_tokens: int, avoid: Sequence[str]
    ) -> tuple[list[str], bool, int]:
        """The words to stream, whether they stop short of the reply, and the prompt's length."""
        limit = max(1, max_tokens)
        continued = _continued_reply(messages)
        if continued is not None:
            prefix, original = continued
            rest, part_limit = self._rest_of(original, prefix)
            words = re.findall(r"\s*\S+\s*|\s+", rest)
        else:
            text, part_limit = self._compose(messages, avoid=avoid)
            words = re.findall(r"\S+\s*|\s+", text)
        if part_limit is not None:
            limit = min(limit, part_limit)
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        return words[:limit], len(words) > limit, chars

    def _reply(self, messages: list[dict]) -> str:
        return self._compose(messages)[0]

    def _rest_of(self, messages: list[dict], prefix: str) -> tuple[str, int | None]:
        """What follows ``prefix`` in the reply the demo would have given (the story, or any
        version of the short reply); a start the demo does not know gets a short closing line."""
        start = prefix.strip()
        for text, part_limit in self._candidates(messages):
            if start and text.startswith(start):
                return text[len(start) :], part_limit
        return " *smiles* That's all, really.", None

    def _compose(self, messages: list[dict], *, avoid: Sequence[str] = ()) -> tuple[str, int | None]:
        """The reply and its length limit in words (None: no limit of its own): the first of
        the candidates that is not one of ``avoid``."""
        avoided = [text.strip() for text in avoid if text.strip()]
        candidates = list(self._candidates(messages))
        for text, part_limit in candidates:
            if not any(text.startswith(earlier) for earlier in avoided):  # a cut story is its start
                return text, part_limit
        return candidates[0]

    def _candidates(self, messages: list[dict]) -> Iterator[tuple[str, int | None]]:
        """Every reply the demo may give, the usual one first: the story (when one is asked
        for), then each combination of opener, middle and closer from a seeded start."""
        system = messages[0].get("content", "") if messages else ""
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        names = re.search(r"You are (.+?), chatting with (.+?)\.", system)
        user = names.group(2) if names else "you"
        if STORY_WORDS.search(last):
            yield STORY.format(user=user), STORY_PART_WORDS
        location, action = _scene_of(system)
        seed = f"{last}|{len(messages)}"
        state = analyze(
            f"Current location: {location}\nCurrent action: {action}\nNew message from {user}: {last}"
        )
        sizes = (len(OPENERS), len(MIDDLES), len(CLOSERS))
        total = sizes[0] * sizes[1] * sizes[2]
        start = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % total
        for step in range(total):
            index = (start + step) % total
            opener, rest = divmod(index, sizes[1] * sizes[2])
            middle, closer = divmod(rest, sizes[2])
            yield (
                (
                    OPENERS[opener]
                    + MIDDLES[middle].format(user=user)
                    + CLOSERS[closer].format(action=state["action"], location=state["location"])
                ),
                None,
            )


def _scene_of(system: str) -> tuple[str, str]:
    """Where the companion is and what they do, from the prompt's scene line
    ("You are at the park, wearing sportswear, working out.": ``companions.scene``)."""
    line = re.search(r"^You are (?!.*, chatting with )(.+)\.$", system, re.MULTILINE)
    parts = line.group(1).split(", ") if line else []
    if len(parts) < 3:
        return "here", "thinking of you"
    return parts[0], parts[-1]


def _continued_reply(messages: list[dict]) -> tuple[str, list[dict]] | None:
    """(the reply's start, the prompt it was first written for) when asked to continue."""
    if (
        len(messages) >= 2
        and messages[-1].get("role") == "user"
        and messages[-1].get("content") == CONTINUE_PROMPT
        and messages[-2].get("role") == "assistant"
    ):
        return str(messages[-2].get("content") or ""), messages[:-2]
    return None
