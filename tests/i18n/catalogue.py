"""Reading the committed catalogues, and finding English catalogue text on a translated page.

The tests read ``locale/<lang>/LC_MESSAGES/{django,djangojs}.po`` themselves (a small
parser, no dependency): the msgids are the English the site can show, so "no English
left" is checked against them rather than against a hand-kept list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "locale"
LANGUAGES = ("de", "es")
DOMAINS = ("django", "djangojs")

# Words that are the same in every language here: names and formats, not English. The
# template checker accepts them outside translate tags, and the page checks ignore a
# catalogue phrase made of nothing else. Keep it short; each needs a reason.
ALLOWED_WORDS = frozenset(
    {
        "CompanionHub",  # the product's name
        "SillyTavern",  # another app's name
        "RisuAI",  # another app's name
        "JSON",  # file formats
        "JSONL",
        "PNG",
        "CHARX",
        "Markdown",
        "API",  # as in "API token": kept in German and Spanish too
        "UTC",  # the time zone's name
    }
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text.strip()[1:-1])


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """The English texts of the entry: the msgid, and the plural when there is one."""
        return [self.msgid] + ([self.msgid_plural] if self.msgid_plural else [])

    @property
    def translations(self) -> list[str]:
        return [self.msgstr[n] for n in sorted(self.msgstr)]

    @property
    def is_translated(self) -> bool:
        needed = (0, 1) if self.msgid_plural is not None else (0,)
        return all(self.msgstr.get(n) for n in needed) and "fuzzy" not in self.flags


def parse_po(text: str) -> list[Entry]:
    """The entries of a .po file (not the header, not obsolete entries)."""
    entries = []
    for block in re.split(r"\n\s*\n", text):
        entry, target = Entry(), None
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#~"):
                continue
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#:"):
                entry.references += line[2:].split()
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                _append(entry, target, _unquote(line))
            else:
                keyword, _, rest = line.partition(" ")
                target = keyword
                if keyword == "msgid":
                    entry.msgid = _unquote(rest)
                elif keyword == "msgid_plural":
                    entry.msgid_plural = _unquote(rest)
                elif keyword == "msgctxt":
                    entry.msgctxt = _unquote(rest)
                elif keyword.startswith("msgstr"):
                    index = int(keyword[7:-1]) if keyword != "msgstr" else 0
                    target = f"msgstr{index}"
                    entry.msgstr[index] = _unquote(rest)
        if entry.msgid:
            entries.append(entry)
    return entries


def _append(entry: Entry, target: str | None, value: str) -> None:
    if target == "msgid":
        entry.msgid += value
    elif target == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + value
    elif target == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + value
    elif target and target.startswith("msgstr"):
        index = int(target[6:])
        entry.msgstr[index] = entry.msgstr.get(index, "") + value


def catalogue(language: str, domain: str, base: Path = LOCALE_DIR) -> list[Entry]:
    return parse_po((base / language / "LC_MESSAGES" / f"{domain}.po").read_text(encoding="utf-8"))


_PLACEHOLDER = re.compile(r"%\([^)]*\)[sdif]|%[sdif]|\{[a-z_]*\}|<[^>]*>|%%")
_LETTERS = re.compile(r"[^\W\d_]")
_EDGES = " \n\t.,:;!?()\u2026\u2014\u2013-\u00b7\u201c\u201d\"'"  # spaces, punctuation, dashes, quotes


def english_phrases(language: str) -> set[str]:
    """English a page in ``language`` must not show: the pieces of every catalogue msgid that
    the catalogue translates differently, split at placeholders and tags, of at least two
    words or eight letters, not made only of allowed words, and not used by the translations."""
    entries = [
        entry
        for domain in DOMAINS
        if (LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po").exists()
        for entry in catalogue(language, domain)
    ]
    translated_text = "\n".join(text for entry in entries for text in entry.translations)
    phrases = set()
    for entry in entries:
        if set(entry.sources) & set(entry.translations):
            continue  # the same in this language ("Tokens", "Moderation")
        for source in entry.sources:
            for piece in _PLACEHOLDER.split(source):
                piece = piece.strip(_EDGES)
                if _significant(piece):
                    phrases.add(piece)
    # A phrase the translations use too is not English only ("Download", "Authorization: Bearer").
    return {phrase for phrase in phrases if not english_on_page(translated_text, {phrase})}


def _significant(piece: str) -> bool:
    words = [word for word in re.split(r"\s+", piece) if _LETTERS.search(word)]
    if all(word.strip(".,:;()") in ALLOWED_WORDS for word in words):
        return False
    return len(words) >= 2 or len(_LETTERS.findall(piece)) >= 8


def english_on_page(text: str, phrases: set[str]) -> list[str]:
    """The phrases that occur in ``text`` as whole words."""
    return sorted(p for p in phrases if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text))
