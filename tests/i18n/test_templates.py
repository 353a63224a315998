"""No template shows text outside {% translate %} / {% blocktranslate %}.

Every template is tokenized with Django's own Lexer; the text between tags is
kept, everything Django writes (tags, variables, comments) becomes a neutral
mark, and text inside translate tags counts as translated. What is left is read
as HTML: visible text and the attributes people read (placeholder, title,
aria-label, alt, the value of a button input) must have no letters, apart from
the allowed words in ``catalogue.ALLOWED_WORDS``. <script> and <style>
contents are code, not text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.base import Lexer, TokenType

from tests.i18n.catalogue import ALLOWED_WORDS, ROOT

TEMPLATE_DIRS = [ROOT / "templates", *sorted(ROOT.glob("*/templates"))]
TEMPLATES = sorted(
    {path for base in TEMPLATE_DIRS for path in base.rglob("*") if path.suffix in (".html", ".txt", ".svg")}
)
USER_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt", "aria-description", "aria-placeholder"}
BUTTON_INPUTS = {"submit", "button", "reset"}
OPENING = {"translate", "trans", "blocktranslate", "blocktrans"}
SKIPPED_BLOCKS = {"comment": "endcomment", "verbatim": "endverbatim"}
# Blocks a parent template writes inside an attribute nobody reads (the admin's <body class>).
ATTRIBUTE_BLOCKS = {"bodyclass"}
_LETTER = re.compile(r"[^\W\d_]")
_ALLOWED = re.compile(r"(?<!\w)(?:" + "|".join(sorted(map(re.escape, ALLOWED_WORDS))) + r")(?!\w)")
MARK = "\x01"  # what Django writes: a value, a tag's output, translated text


def skeleton(source: str) -> str:
    """``source`` with each Django token replaced by MARK (newlines kept, for line numbers)
    and every translated text (translate tags, blocktranslate bodies) replaced likewise."""
    out: list[str] = []
    closing: str | None = None
    for token in Lexer(source).tokenize():
        raw = token.contents
        newlines = raw.count("\n") if token.token_type == TokenType.TEXT else 0
        filler = MARK + "\n" * newlines
        if closing:  # inside blocktranslate / comment / verbatim: all of it is "written by Django"
            if token.token_type == TokenType.BLOCK and raw.split()[0] == closing:
                closing = None
            out.append(filler if token.token_type == TokenType.TEXT else MARK)
            continue
        if token.token_type == TokenType.TEXT:
            out.append(raw)
            continue
        if token.token_type == TokenType.BLOCK:
            name = raw.split()[0] if raw.split() else ""
            if name in ("blocktranslate", "blocktrans"):
                closing = "end" + name
            elif name in SKIPPED_BLOCKS:
                closing = SKIPPED_BLOCKS[name]
            elif name == "block" and raw.split()[1:2] and raw.split()[1] in ATTRIBUTE_BLOCKS:
                closing = "endblock"
        out.append(MARK)
    return "".join(out)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self.code_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            # An <input type="submit">'s value is its caption; a <button>'s value is only posted.
            shown = name in USER_ATTRIBUTES or (
                name == "value" and tag == "input" and (values.get("type") or "") in BUTTON_INPUTS
            )
            if shown and value:
                self._check(value)
        if tag in ("script", "style"):
            self.code_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self.code_depth:
            self.code_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.code_depth:
            self._check(data)

    def _check(self, text: str) -> None:
        left = _ALLOWED.sub("", text.replace(MARK, " "))
        if _LETTER.search(left):
            self.found.append((self.getpos()[0], " ".join(text.replace(MARK, "…").split())))


def untranslated_text(source: str) -> list[tuple[int, str]]:
    """(line, text) of every piece of text a person reads that is not in a translate tag."""
    reader = _Reader()
    reader.feed(skeleton(source))
    reader.close()
    return reader.found


def test_the_checker_finds_literal_text_and_accepts_translated_text():
    found = untranslated_text(
        '{% load i18n %}<h1>Hello</h1>\n<p>{% translate "Fine" %} · {{ name }} 3</p>\n'
        '<input type="submit" value="Send"><input type="hidden" name="x" value="plain">'
        '<button name="action" value="next">{% translate "Go" %}</button>\n'
        '<img alt="{% translate \'A cat\' %}"><span title="Bare title">{% blocktranslate %}Hi {{ n }}'
        "{% endblocktranslate %}</span>{# a comment #}<script>const words = 'ignored';</script>"
        "<p>CompanionHub · JSON</p>"
    )
    assert found == [(1, "Hello"), (3, "Send"), (4, "Bare title")]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_template_shows_text_outside_translate_tags(path: Path):
    found = untranslated_text(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT)
    assert not found, "Untranslated text:\n" + "\n".join(f"{where}:{line}: {text}" for line, text in found)
