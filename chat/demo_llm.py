"""The offline demo LLM: no network, no model, clearly not real AI.

Used only when no LLM is configured (the embedded default), so a fresh
checkout can chat. It speaks the same small interface as
``chat.llm.OpenAIChatClient``: ``complete`` answers the scene analysis with
well-formed JSON guessed from keywords, and ``stream_chat`` streams a short
in-character reply word by word at a readable pace.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator

from chat.llm import HEARTBEAT_SECONDS, Completion, estimate_tokens
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
        text = json.dumps(analyze(prompt)) if ANALYSIS_MARKER in system else self._reply(messages)
        return Completion(text, "stop", estimate_tokens(prompt), estimate_tokens(text), usage_estimated=True)

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
