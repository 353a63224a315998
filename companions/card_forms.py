"""The character editor's fields: every card text on the settings page, limits shown and enforced.

Card text is never cut: each field has a limit (``companions.limits``), said
in its help text and counted live on the page (``data-max-chars``), and text
over it is an error on the form. Textareas carry no ``maxlength``, because
a browser silently cuts what is pasted past it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from companions.cards.stored import stored_text, stored_texts
from companions.limits import CARD_LIST_ITEM_MAX_CHARS, CARD_LIST_MAX_ITEMS, CARD_TEXT_MAX_CHARS


def count_text(n: int) -> str:
    return number_format(n, force_grouping=True)


def normalized_lines(text: str) -> str:
    """Line ends as a card stores them: browsers send a textarea's as ``\\r\\n``."""
    return text.replace("\r\n", "\n")


class CardTextField(forms.CharField):
    """Card text: trimmed, line ends as ``\\n``, at most ``max_length`` characters (an error, never a cut)."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6}))
        super().__init__(max_length=max_length, **kwargs)

    def to_python(self, value: Any) -> str:
        return normalized_lines(super().to_python(value) or "")

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = super().widget_attrs(widget)
        attrs.pop("maxlength", None)
        attrs["data-max-chars"] = str(self.max_length)
        return attrs


class TextListWidget(forms.Widget):
    """Several texts under one name, one textarea each, and an empty one to add another.

    Without scripts a text is removed by emptying its box; ``static/js/editor.js``
    adds *Add* and *Remove* buttons.
    """

    def __init__(self, *, item_label: Any, rows: int = 3, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.item_label = item_label
        self.rows = rows

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        return list(data.getlist(name)) if hasattr(data, "getlist") else list(data.get(name) or [])

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data  # the page always sends one box, the empty one to add another

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        items = [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
        built = self.build_attrs(self.attrs, attrs)
        base_id = built.pop("id", f"id_{name}")
        max_chars = built.get("data-max-chars", "")
        boxes = format_html_join(
            "",
            '<div class="text-list-item" data-text-list-item><textarea name="{}" id="{}" rows="{}"'
            ' aria-label="{}" data-max-chars="{}">{}</textarea>'
            '<button type="button" class="btn btn-ghost btn-small" data-remove-item hidden>{}</button></div>',
            (
                (
                    name,
                    base_id if number == 1 else f"{base_id}_{number}",
                    self.rows,
                    f"{self.item_label} {number}",
                    max_chars,
                    # A leading newline would be eaten by the HTML parser: keep the text's own.
                    f"\n{text}",
                    _("Remove"),
                )
                for number, text in enumerate([*items, ""], start=1)
            ),
        )
        return format_html(
            '<div class="text-list" data-text-list data-item-label="{}">{}<button type="button"'
            ' class="btn btn-secondary btn-small" data-add-item hidden>{}</button></div>',
            self.item_label,
            boxes,
            _("+ Add another"),
        )


class TextListField(forms.Field):
    """A card's list of texts (greetings): empty boxes left out, each checked against the limits."""

    def __init__(self, *, name: str, item_label: Any, **kwargs: Any) -> None:
        self.max_items = CARD_LIST_MAX_ITEMS[name]
        self.item_max_chars = CARD_LIST_ITEM_MAX_CHARS[name]
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", TextListWidget(item_label=item_label))
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {**super().widget_attrs(widget), "data-max-chars": str(self.item_max_chars)}

    def to_python(self, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [] if value in self.empty_values else [value]
        texts = (normalized_lines(str(item)).strip() for item in items)
        return [text for text in texts if text]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > self.max_items:
            raise forms.ValidationError(
                _("At most %(limit)s; this has %(count)s. Nothing was saved."),
                code="too_many",
                params={"limit": count_text(self.max_items), "count": count_text(len(value))},
            )
        for number, text in enumerate(value, start=1):
            if len(text) > self.item_max_chars:
                raise forms.ValidationError(
                    _(
                        "Number %(number)s has %(length)s characters; at most %(limit)s are allowed."
                        " Nothing was saved."
                    ),
                    code="too_long",
                    params={
                        "number": number,
                        "length": count_text(len(text)),
                        "limit": count_text(self.item_max_chars),
                    },
                )


class TagsField(TextListField):
    """Tags, one a line (a line may hold a comma, so one a line loses nothing)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3}))
        super().__init__(name="tags", item_label="", **kwargs)

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, str):
            value = normalized_lines(value).split("\n")
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(str(v) for v in value) if isinstance(value, list) else value

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {}


# The settings page's sections (``companions.forms.SETTINGS_SECTIONS``) showing each card text.
CARD_SECTIONS: dict[str, tuple[str, ...]] = {
    "personality": ("personality", "scenario"),
    "greetings": ("alternate_greetings", "group_only_greetings"),
    "examples": ("mes_example",),
    "prompts": ("post_history_instructions",),
    "notes": ("creator_notes", "tags", "creator", "character_version", "nickname"),
}


def _text(name: str, label: Any, *, help_text: Any = "", line: bool = False) -> CardTextField:
    widget = forms.TextInput() if line else forms.Textarea(attrs={"rows": 8})
    return CardTextField(
        max_length=CARD_TEXT_MAX_CHARS[name], label=label, help_text=help_text, widget=widget
    )


class CardFieldsForm(forms.Form):
    """The card's texts kept in ``config["card"]`` (the columns are on ``CompanionSettingsForm``)."""

    personality = _text(
        "personality",
        gettext_lazy("Personality"),
        help_text=gettext_lazy("A summary of the character's personality, as cards write it."),
    )
    scenario = _text(
        "scenario",
        gettext_lazy("Scenario"),
        help_text=gettext_lazy("The circumstances and context of the conversation."),
    )
    alternate_greetings = TextListField(
        name="alternate_greetings",
        label=gettext_lazy("Alternate greetings"),
        item_label=gettext_lazy("Alternate greeting"),
        help_text=gettext_lazy("A new chat offers these as other versions of the first message."),
    )
    group_only_greetings = TextListField(
        name="group_only_greetings",
        label=gettext_lazy("Group-only greetings"),
        item_label=gettext_lazy("Group-only greeting"),
        help_text=gettext_lazy("Greetings for group chats only (Character Card V3)."),
    )
    mes_example = _text(
        "mes_example",
        gettext_lazy("Example messages"),
        help_text=gettext_lazy(
            "Example dialogue showing how the character writes; separate examples with a line &lt;START&gt;."
        ),
    )
    post_history_instructions = _text(
        "post_history_instructions",
        gettext_lazy("Post-history instructions"),
        help_text=gettext_lazy("Instructions placed after the chat history, just before the reply."),
    )
    creator_notes = _text(
        "creator_notes",
        gettext_lazy("Creator notes"),
        help_text=gettext_lazy("Notes for people using the card; never sent to the LLM."),
    )
    tags = TagsField(label=gettext_lazy("Tags"), help_text=gettext_lazy("One tag a line."))
    creator = _text("creator", gettext_lazy("Creator"), line=True)
    character_version = _text("character_version", gettext_lazy("Card version"), line=True)
    nickname = _text(
        "nickname",
        gettext_lazy("Nickname"),
        line=True,
        help_text=gettext_lazy("Used for the character's name in messages, when set (Character Card V3)."),
    )

    def __init__(self, data: Any = None, *, stored: dict[str, Any], prefix: str | None = None) -> None:
        initial = {
            name: stored_texts(stored, name)
            if isinstance(field, TextListField)
            else stored_text(stored, name)
            for name, field in self.base_fields.items()
        }
        super().__init__(data, initial=initial, prefix=prefix)
        for field in self.fields.values():
            add_limit_help(field)

    def values(self) -> dict[str, Any]:
        """The texts the page sent; a field it did not send (a page from before the field) is kept."""
        return {
            name: self.cleaned_data[name]
            for name, field in self.fields.items()
            if not field.widget.value_omitted_from_data(self.data, self.files, self.add_prefix(name))
        }

    def sections(self) -> dict[str, list[forms.BoundField]]:
        return {section: [self[name] for name in names] for section, names in CARD_SECTIONS.items()}


def add_limit_help(field: forms.Field) -> None:
    """Say a field's limit after its help text, in the page's language and number format."""
    if isinstance(field, TagsField):
        limit = ngettext(
            "At most %(count)s tag of up to %(chars)s characters.",
            "At most %(count)s tags of up to %(chars)s characters each.",
            field.max_items,
        ) % {"count": count_text(field.max_items), "chars": count_text(field.item_max_chars)}
    elif isinstance(field, TextListField):
        limit = ngettext(
            "At most %(count)s, each up to %(chars)s characters.",
            "At most %(count)s, each up to %(chars)s characters.",
            field.max_items,
        ) % {"count": count_text(field.max_items), "chars": count_text(field.item_max_chars)}
    elif isinstance(field, CardTextField) and field.max_length is not None:
        limit = _("Up to %(count)s characters.") % {"count": count_text(field.max_length)}
    else:
        return
    field.help_text = f"{field.help_text} {limit}".strip() if field.help_text else limit
