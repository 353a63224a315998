"""Cut a reply into sentences while it streams, so each can be spoken as soon as it ends.

``SentenceCutter.feed(piece)`` takes the reply's text as it arrives and returns
the sentences completed by it; ``flush()`` returns the rest once the reply
has ended. The decisions depend on the text only, never on how it was cut
into pieces, so a reply fed a character at a time gives the same sentences as
one fed at once; and the sentences put together are exactly ``speakable(text)``
(the reply without its ``*actions*`` when they are skipped, without the
asterisks when they are read).

A sentence ends at ``.``, ``!``, ``?``, ``…`` (with any closing quotes or
brackets after them) followed by white space; at a CJK full stop, exclamation or question mark followed by
anything; and at a line break. It is cut only when the next sentence's first
visible character arrives, so the white space after a sentence stays with it
and the reply's last sentence is always what ``flush()`` returns (the voice
step marks that clip ``last``). Never cut:

* inside ``*actions*`` (skipped or read whole, ``actions="skip"|"read"``);
* inside quotes: ``"..."``, ``“...”``, ``«...»``, ``「...」``;
* inside numbers (``3.5``: no white space follows the point) or after an
  abbreviation (``Dr.``, ``e.g.``, a single capital initial);
* when the sentence so far is shorter than ``min_chars``: it is spoken with
  the next one (``Oh! Hello there.`` is one clip).

A line break closes an open quote or action: a model that forgot the closing
mark must not silence the rest of its reply. A run-on longer than
``max_chars`` is cut at its last comma, semicolon, colon or dash, else at its
last space, else where it reaches the limit.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ABBREVIATIONS", "SentenceCutter", "is_speakable", "speakable"]

Actions = Literal["skip", "read"]

# Written as escapes where a reader could take them for ASCII: fullwidth ! ? , and the dashes.
TERMINATORS = frozenset(".!?…")
CJK_TERMINATORS = frozenset("。\uff01\uff1f")
CLOSERS = frozenset("\"'”\u2019»」』)]")
QUOTE_PAIRS = {"“": "”", "«": "»", "「": "」", "『": "』"}
SOFT_BREAKS = (", ", "; ", ": ", " \u2013 ", " \u2014 ", "、", "\uff0c")
# Words that end with a point without ending the sentence (compared in lower case, without it).
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "cf", "approx"}
)


def speakable(text: str, *, actions: Actions = "skip") -> str:
    """What the cutter would return in all for ``text``: the reference of its tests."""
    cutter = SentenceCutter(actions=actions, min_chars=0, max_chars=10**9)
    return "".join([*cutter.feed(text), *cutter.flush()])


def is_speakable(sentence: str) -> bool:
    """Whether a sentence holds anything to say (a letter or a digit)."""
    return any(ch.isalnum() for ch in sentence)


class SentenceCutter:
    def __init__(self, *, actions: Actions = "skip", min_chars: int = 12, max_chars: int = 400) -> None:
        if actions not in ("skip", "read"):
            raise ValueError("actions must be 'skip' or 'read'")
        if max_chars < 2 * max(min_chars, 1):
            raise ValueError("max_chars must be at least twice min_chars")
        self.actions = actions
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.pending = ""  # speakable text not returned yet
        self.in_action = False
        self.quote_close: str | None = None  # the mark that ends the open quote
        self.ended = False  # the pending text ends a sentence, once white space follows
        self.cjk_ended = False  # ... or at once (CJK)
        self.may_cut = False  # white space after an ending (or a line break) was seen

    def feed(self, piece: str) -> list[str]:
        out: list[str] = []
        for ch in piece:
            self._take(ch, out)
        return out

    def flush(self) -> list[str]:
        """The rest, once the reply has ended (nothing when nothing is left)."""
        rest, self.pending = self.pending, ""
        self.in_action = self.ended = self.cjk_ended = self.may_cut = False
        self.quote_close = None
        return [rest] if rest else []

    # --- one character ----------------------------------------------------------------

    def _take(self, ch: str, out: list[str]) -> None:
        if ch == "*":
            if not self.in_action and self.actions == "read" and (self.may_cut or self.cjk_ended):
                self._cut(len(self.pending), out)  # an action read aloud starts a sentence of its own
            self.in_action = not self.in_action
            return
        if self.in_action and ch != "\n":
            if self.actions == "read":  # read whole: no cut inside, white space kept as it is
                if ch.isspace():
                    self.pending += ch
                else:
                    self._add(ch, out)
            return
        if ch == "\n":
            self.in_action = False
            self.quote_close = None
            self.pending += ch
            self.may_cut = True
            return
        if ch.isspace():
            self.pending += ch
            if self.ended and self.quote_close is None and not self._after_abbreviation():
                self.may_cut = True
            self.ended = self.cjk_ended = False
            return
        self._add(ch, out)

    def _add(self, ch: str, out: list[str]) -> None:
        """A visible character of the speakable text: first cut before it if a sentence ended."""
        starts_next = ch not in CLOSERS and ch not in TERMINATORS and ch not in CJK_TERMINATORS
        if starts_next and (self.may_cut or self.cjk_ended) and not self.in_action:
            self._cut(len(self.pending), out)
        self.pending += ch
        self._track_quotes(ch)
        if ch in TERMINATORS or ch in CJK_TERMINATORS:
            self.ended = True
            self.cjk_ended = ch in CJK_TERMINATORS and self.quote_close is None
        elif ch not in CLOSERS:
            self.ended = self.cjk_ended = False
        if len(self.pending) > self.max_chars:
            self._cut_run_on(out)

    def _track_quotes(self, ch: str) -> None:
        if self.quote_close is not None:
            if ch == self.quote_close:
                self.quote_close = None
        elif ch == '"':
            self.quote_close = '"'
        elif ch in QUOTE_PAIRS:
            self.quote_close = QUOTE_PAIRS[ch]

    def _after_abbreviation(self) -> bool:
        text = self.pending.rstrip()
        while text and text[-1] in CLOSERS:
            text = text[:-1]
        if not text.endswith("."):
            return False
        word = text[:-1].rsplit(None, 1)[-1] if text[:-1].strip() else ""
        word = word.lstrip("\"'“«(")
        if len(word) == 1 and word.isupper() and word != "I":  # an initial: "J. R. R. Tolkien"
            return True
        return word.lower() in ABBREVIATIONS

    def _cut(self, at: int, out: list[str]) -> None:
        """Return ``pending[:at]`` as a sentence if it is long enough; else keep collecting."""
        self.may_cut = self.cjk_ended = False
        head = self.pending[:at]
        if len(head.strip()) < max(self.min_chars, 1):
            return
        out.append(head)
        self.pending = self.pending[at:]

    def _cut_run_on(self, out: list[str]) -> None:
        text = self.pending
        floor = max(self.min_chars, 1)
        at = -1
        for mark in SOFT_BREAKS:  # after the mark, before its space: "a, | b"
            found = text.rfind(mark, floor)
            if found >= 0:
                at = max(at, found + len(mark.rstrip()))
        if at <= floor:
            at = text.rfind(" ", floor)
        if at <= floor:
            at = len(text) - 1  # no break at all: the limit decides, the character just added goes on
        out.append(text[:at])
        self.pending = text[at:]
        self.may_cut = False
