"""An admin list filter for relations with too many rows to list: it shows only the chosen one.

Django's related-field filter lists every user (or companion, or conversation)
in the sidebar, one link each: with thousands of users the page is a wall of
names and a query per page load. Moderators arrive at a filtered list from a
link instead (the user's page links to their messages), so this filter keeps
the lookup (``conversation__owner__id__exact=<id>``: allowed, and shown as
"By owner: All | alice" to clear it) and lists nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin.filters import RelatedFieldListFilter

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise


class ChosenRelatedFilter(RelatedFieldListFilter):
    """``RelatedFieldListFilter`` whose choices are only the rows named in the query string."""

    @property
    def include_empty_choice(self) -> bool:
        return False  # "(None)" would be one more filter nobody asked for

    def has_output(self) -> bool:
        # Whenever a value is given, even one naming nothing: the admin applies only the
        # filters that have output, and a lookup left out would list every row.
        return bool(self.lookup_val)

    def field_choices(self, field: Any, request: Any, model_admin: Any) -> list[tuple[str, str | StrPromise]]:
        # Ids that are not numbers choose nothing here; the lookup itself reports them
        # as a bad filter, as Django does for any bad value.
        chosen = [value for value in (self.lookup_val or []) if str(value).isdigit()]
        if not chosen:
            return []
        rows = field.remote_field.model._default_manager.filter(pk__in=chosen)
        choices: list[tuple[str, str | StrPromise]] = [(str(row.pk), str(row)) for row in rows]
        return choices
