"""The offline demo LLM: no network, no model, clearly not real AI.

Used only when no LLM is configured (the embedded default), so a fresh
checkout can chat. It speaks the same small interface as
``chat.llm.OpenAIChatClient``: ``complete`` answers the scene analysis with
well-formed JSON guessed from keywords (and the memory work's summaries and
facts from the words of the chat), ``stream_chat`` streams a short
in-character reply word by word at a readable pace, and ``embed`` gives
deterministic embeddings (hashed words and character trigrams, so sentences
that share words are close) in the ``/v1/embeddings`` wire shape, so memory
retrieval runs offline too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator

from chat.llm import HEARTBEAT_SECONDS, Completion, estimate_tokens
from chat.memory_prompts import MEMORY_MARKER, SUMMARY_MARKER, section
from chat.prompts import ANALYSIS_MARKER

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
IMAGE_WORDS = ("picture", "photo", "selfie", "pic", "show me", "see you")

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


def _pick(options: tuple[str, ...], seed: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return options[digest[0] % len(options)]


def analyze(prompt: str) -> dict[str, object]:
    """The scene after a message, from keywords; unchanged values stay as they are."""
    match = re.search(r"New message from [^:]*:\s*(.*)", prompt, re.DOTALL)
    message = (match.group(1) if match else prompt).lower()
    state = {
        "outfit": _field(prompt, "Current outfit") or "casual clothes",
        "location": _field(prompt, "Current location") or "at home",
        "action": _field(prompt, "Current action") or "relaxing",
        "wants_image": any(word in message for word in IMAGE_WORDS),
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


class DemoStream:
    def __init__(self, words: list[str], *, delay: float, prompt_chars: int, truncated: bool = False) -> None:
        self._finish_reason = "length" if truncated else "stop"
        self._words = words
        self._delay = delay
        self._prompt_chars = prompt_chars
        self._closed = threading.Event()
        self._text: list[str] = []
        self._result: Completion | None = None

    @property
    def result(self) -> Completion:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

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
        text = "".join(self._text)
        self._result = Completion(
            text=text,
            finish_reason=self._finish_reason,
            prompt_tokens=max(1, self._prompt_chars // 4),
            completion_tokens=estimate_tokens(text),
            usage_estimated=True,
        )


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

    def stream_chat(self, messages: list[dict], *, max_tokens: int, temperature: float) -> DemoStream:
        words = re.findall(r"\S+\s*|\s+", self._reply(messages))
        truncated = len(words) > max(1, max_tokens)
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        return DemoStream(
            words[: max(1, max_tokens)], delay=self.token_delay, prompt_chars=chars, truncated=truncated
        )

    def _reply(self, messages: list[dict]) -> str:
        system = messages[0].get("content", "") if messages else ""
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        names = re.search(r"You are (.+?), chatting with (.+?)\.", system)
        user = names.group(2) if names else "you"
        scene = re.search(r"Right now you are (.+?), (.+), (.+?)\.$", system, re.MULTILINE)
        location, action = (scene.group(1), scene.group(3)) if scene else ("here", "thinking of you")
        seed = f"{last}|{len(messages)}"
        state = analyze(
            f"Current location: {location}\nCurrent action: {action}\nNew message from {user}: {last}"
        )
        return (
            _pick(OPENERS, seed, "open")
            + _pick(MIDDLES, seed, "middle").format(user=user)
            + _pick(CLOSERS, seed, "close").format(action=state["action"], location=state["location"])
        )
