"""The core pages switched to German or Spanish show no English catalogue text.

"English" is every msgid of the committed catalogue that the language translates
differently (tests/i18n/catalogue.py), found in the page's visible text and in the
attributes people read. The chat pages and the wizard are checked in a real browser
(tests/browser/test_languages.py); these are the server-rendered core pages.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import translation

from companionhub.dbunavailable import database_unavailable_response
from companionhub.ratelimits import RateLimited, rate_limited_response
from tests.companions.factories import make_companion
from tests.i18n.catalogue import LANGUAGES, LOCALE_DIR, english_on_page, english_phrases

READ_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.code = 0

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"])
        self.code += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.code -= tag in ("script", "style") and self.code > 0

    def handle_data(self, data):
        if not self.code:
            self.parts.append(data)


def shown_text(html: str) -> str:
    reader = _Text()
    reader.feed(html)
    return "\n".join(" ".join(part.split()) for part in reader.parts if part.strip())


@pytest.fixture(params=LANGUAGES)
def language(request):
    path = LOCALE_DIR / request.param / "LC_MESSAGES" / "django.po"
    assert path.exists(), f"{path} is missing: the catalogues are assembled into locale/"
    assert path.with_suffix(".mo").exists(), "not compiled: run make install (or make messages)"
    return request.param


def assert_no_english(html: str, language: str, where: str) -> None:
    found = english_on_page(shown_text(html), english_phrases(language))
    assert not found, f"{where} in {language} shows English: {found}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/register/", "/no-such-page/"])
def test_visitor_pages(client, language, path):
    response = client.get(path, headers={"accept-language": language})
    assert_no_english(response.content.decode(), language, path)


@pytest.mark.parametrize(
    "path", ["/", "/companions/start/", "/accounts/profile/", "/accounts/password/", "/accounts/delete/"]
)
def test_signed_in_pages(client, user, language, path):
    user.language = language
    user.save()
    make_companion(user)  # (without one, the root leads to making the first)
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    assert_no_english(response.content.decode(), language, path)


def test_error_pages(language):
    request = RequestFactory().get("/", headers={"accept": "text/html"})
    with translation.override(language):
        pages = {
            "500": render_to_string("500.html"),
            "503": database_unavailable_response(request).content.decode(),
            "403": render_to_string("403.html", {"site_name": "CompanionHub"}),
        }
        request.user = None
        pages["429"] = rate_limited_response(request, RateLimited("login", 120)).content.decode()
    for name, html in pages.items():
        assert f'lang="{language}"' in html or name in ("403", "429")
        assert_no_english(html, language, name)


@pytest.mark.django_db
def test_the_check_finds_english_on_an_english_page(client, language):
    response = client.get("/no-such-page/", headers={"accept-language": "en"})
    found = english_on_page(shown_text(response.content.decode()), english_phrases(language))
    assert "There is nothing here, or it is not yours to see" in found
