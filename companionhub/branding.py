"""The product's name, the one place it is spelled.

Pages take it as ``site_name`` (``companionhub.context_processors.site``).
Django's sign-in and sign-out views put the request's host there instead
(their ``get_current_site``), so ``accounts.views`` passes this name to them.
"""

from __future__ import annotations

SITE_NAME = "CompanionHub"
