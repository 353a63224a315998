"""Values every page needs: the site name and whether demo back ends are in use."""

from __future__ import annotations

from django.http import HttpRequest

from companionhub import backends_info
from companionhub.branding import SITE_NAME


def site(request: HttpRequest) -> dict[str, object]:
    return {"site_name": SITE_NAME, "demo_backends": backends_info.demo_backends()}
