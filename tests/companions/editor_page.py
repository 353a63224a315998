"""The settings page's form as a browser submits it: every field's value read from the HTML.

Saving "unchanged" posts exactly what the page shows, with a browser's
habits: a textarea's first newline dropped, its line ends sent as ``\\r\\n``,
only checked boxes and radios, a select's selected option, no file.
"""

from __future__ import annotations

from html.parser import HTMLParser

from django.utils.datastructures import MultiValueDict


class _FormReader(HTMLParser):
    def __init__(self, form_marker: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_marker = form_marker
        self.in_form = False
        self.data: MultiValueDict[str, str] = MultiValueDict()
        self._textarea: str | None = None
        self._text: list[str] = []
        self._select: str | None = None
        self._option: str | None = None
        self._option_selected = False
        self._option_text: list[str] = []
        self._chosen = False
        self._first: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form_marker in a:
            self.in_form = True
        if not self.in_form or "form" in a:  # a button or field of another form
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.appendlist(name, a.get("value", "on"))
            elif kind not in ("file", "submit", "button"):
                self.data.appendlist(name, a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []
        elif tag == "select" and name:
            self._select, self._chosen, self._first = name, False, None
        elif tag == "option" and self._select:
            self._option = a.get("value")
            self._option_selected = "selected" in a
            self._option_text = []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)
        if self._select and self._option is not None:
            self._option_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.in_form:
            self.in_form = False
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._text)
            text = text[1:] if text.startswith("\n") else text  # the parser drops the first newline
            self.data.appendlist(self._textarea, text.replace("\r\n", "\n").replace("\n", "\r\n"))
            self._textarea = None
        elif tag == "option" and self._select:
            value = self._option if self._option is not None else "".join(self._option_text)
            if self._first is None:
                self._first = value
            if self._option_selected:
                self.data.appendlist(self._select, value)
                self._chosen = True
            self._option = None
        elif tag == "select" and self._select:
            if not self._chosen and self._first is not None:  # none selected: the browser sends the first
                self.data.appendlist(self._select, self._first)
            self._select = None


def form_values(html: str, form_marker: str = "data-editor") -> dict[str, list[str]]:
    """The fields of the page's form marked ``form_marker``, as the browser would post them."""
    reader = _FormReader(form_marker)
    reader.feed(html)
    return {name: reader.data.getlist(name) for name in reader.data}
