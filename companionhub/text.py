"""Text the database can store: the one rule, for forms, websocket frames, services and imports.

PostgreSQL refuses two things Python strings may hold: the NUL character
(``text`` columns and ``jsonb`` alike) and surrogate code points, which have
no UTF-8 form (JSON's ``"\\ud800"`` escape makes a lone one). Either would
reach the driver as an unhandled error, so text is checked where it comes in:
refused where a person typed it (a form error, or a websocket ``error``
frame with ``bad_frame``), scrubbed where it comes from a file someone else
wrote (a character card).

Over HTTP a form field cannot carry a surrogate (Django decodes the body
with replacement characters) but can carry a NUL, which Django's own
``CharField`` already refuses; ``validate_storable_text`` covers both, for
every text that does not pass through such a field.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop

# Marked for the catalogue; callers that show it translate it where they answer (gettext).
UNSTORABLE_MESSAGE = gettext_noop(
    "Text cannot contain NUL characters or broken Unicode (unpaired surrogates)."
)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """True when ``text`` has no NUL and no surrogate code point."""
    return _UNSTORABLE.search(text) is None


def has_unstorable_text(value: Any) -> bool:
    """True when any string in ``value`` (a parsed JSON value: keys, list items, nested) is not storable.

    Walks with a list, not recursion, so a deeply nested value cannot
    exhaust the stack.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def validate_storable_text(value: Any) -> None:
    """A Django validator: refuse text with a NUL or a surrogate, with a message the user can act on."""
    if has_unstorable_text(value):
        raise ValidationError(gettext(UNSTORABLE_MESSAGE), code="unstorable")


def scrub(text: str) -> str:
    """``text`` without NULs, each surrogate replaced by "?": for imported files, where refusing
    a whole card for an invisible character would help nobody."""
    if is_storable(text):
        return text
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
