"""The site in German and in Spanish shows no English from its catalogue.

For each language a new user switches with the header's switcher, then the
landing page, the wizard, a chat, the companion's settings and the profile are
read as a person sees them (the text, placeholders, labels and titles). The
site runs with DEBUG here, so a 404 is Django's debug page: the error pages are
checked in tests/i18n/test_no_english.py. "English" is every catalogue msgid the language
translates differently (tests/i18n/catalogue.py), read from the committed
.po files, not a hand-kept list. What users typed (messages, names, texts in
form fields) is left out.
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.browser.test_journey import create_companion, register
from tests.i18n.catalogue import LANGUAGES, LOCALE_DIR, english_on_page, english_phrases

pytestmark = pytest.mark.browser

# What a person reads on the page, minus what users wrote: message texts, form field contents.
SHOWN_TEXT = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script, style, textarea, .bubble-text, [data-user-text]").forEach((e) => e.remove());
  const parts = [body.innerText || body.textContent];
  document.querySelectorAll("[placeholder], [aria-label], [title], [alt]").forEach((e) => {
    for (const name of ["placeholder", "aria-label", "title", "alt"]) {
      const value = e.getAttribute(name);
      if (value) parts.push(value);
    }
  });
  document.querySelectorAll("input[type=submit], input[type=button]").forEach((e) => parts.push(e.value));
  return parts.join("\\n");
}"""


def switch_language(page, language: str) -> None:
    """The header's switcher, as a person uses it (a form, no script needed)."""
    page.locator("#language-header").select_option(language)
    page.locator("[data-language-form] button[type=submit]").first.click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def assert_no_english(page, language: str, phrases: set[str], name: str) -> None:
    page.wait_for_load_state("networkidle")
    found = english_on_page(page.evaluate(SHOWN_TEXT), phrases)
    shoot(page, f"language-{language}-{name}")
    assert not found, f"{name} in {language} shows English: {found}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_site_in_each_language_shows_no_english(page, site, language):
    assert (LOCALE_DIR / language / "LC_MESSAGES" / "django.po").exists(), "the catalogues are not assembled"
    phrases = english_phrases(language)
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    create_companion(page, "Ren", screenshots=False)
    chat_url = page.url
    settings_url = page.locator("a[href$='/settings/']").first.get_attribute("href")

    switch_language(page, language)
    expect(page).to_have_url(chat_url)  # the switcher comes back to the page it was used on
    assert_no_english(page, language, phrases, "chat")

    for name, url in [
        ("landing", "/"),
        ("wizard", reverse("companions:wizard_start")),
        ("settings", settings_url),
        ("profile", reverse("accounts:profile")),
    ]:
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", language)
        assert_no_english(page, language, phrases, name)


def test_a_visitor_gets_the_browsers_language(browser, site):
    context = browser.new_context(base_url=site, locale="es-ES")
    page = context.new_page()
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("#language-header")).to_have_value("es")
    context.close()
