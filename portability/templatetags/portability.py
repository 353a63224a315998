"""``{% account_exports %}``: the profile page's export section (accounts imports nothing of ours)."""

from __future__ import annotations

from typing import Any

from django import template

from portability import selectors
from portability.models import AccountExport

register = template.Library()


@register.inclusion_tag("portability/exports.html", takes_context=True)
def account_exports(context: template.Context) -> dict[str, Any]:
    user = context["request"].user
    exports = list(selectors.export_list_for_user(user))
    busy = next((export for export in exports if export.status in AccountExport.ACTIVE), None)
    return {
        "exports": [{"export": export, "state": selectors.export_status(export)} for export in exports],
        "busy": busy,
        "csrf_token": context.get("csrf_token"),
    }
