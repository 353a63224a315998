"""The pictures the README and the landing page show, taken from a real site on the offline demo
back ends (no fake servers): the landing page, the wizard, a chat of a few exchanges with a painted
picture on a desktop (side panel open) and on a phone, and the character editor.

They land in ``screenshots/tmp/readme/``; ``make screenshots`` copies them to ``docs/screenshots/``
and the chat pair to ``static/img/`` for the landing page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, SCREENSHOTS, optimise_png, shoot_for_readme
from tests.browser.helpers import online, send
from tests.browser.test_journey import create_companion, register
from tests.fakes.site import SiteFailed, run_site, site_env

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
NAME = "Mika"
CONVERSATION = (
    "Hi Mika! How was your day?",
    "Let's go to the beach and swim, the water looks perfect.",
    "Send me a picture from the water!",
    "Afterwards, shall we have a picnic on the sand?",
)
PICTURE_AT = 2
# Waits two frames: the log's stick-to-bottom has run after the last change.
FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """The site as a fresh checkout runs it: no LLM or picture back end, so the demo ones answer."""
    var = tmp_path_factory.mktemp("demo-site")
    env = site_env(
        {"LLM_BASE_URL": "", "NOVITA_KEY": "", "SD_API_URL": "", "DEMO_LLM_TOKEN_DELAY": "0.04"},
        var_dir=var,
    )
    try:
        with run_site(env, var_dir=var) as running:
            yield running.base_url
    except SiteFailed as exc:
        pytest.fail(str(exc))


def settle(page) -> None:
    page.evaluate("() => document.fonts.ready")
    page.evaluate(FRAMES)


def picture_loaded(page):
    """The newest painted picture, once it has loaded."""
    picture = page.locator(".chat-log .bubble.assistant .bubble-image img").last
    expect(picture).to_be_visible(timeout=30_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    return picture


def test_the_readme_pictures(browser, demo_site):
    context = browser.new_context(viewport=DESKTOP, base_url=demo_site)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto("/")
    settle(page)
    shoot_for_readme(page, "landing")

    register(page, "alex", screenshots=False)  # the demo's replies call the user by name
    create_companion(page, NAME)  # leaves wizard-step4-desktop.png, a full page
    optimise_png(SCREENSHOTS / "wizard-step4-desktop.png", SCREENSHOTS / "readme" / "wizard-step4.png")
    online(page)

    # A short conversation on the demo LLM: the second message moves the scene, the third asks for a picture.
    for n, text in enumerate(CONVERSATION):
        page.get_by_label("Send with picture").set_checked(n == PICTURE_AT)
        send(page, text, to=NAME)
        if n == PICTURE_AT:
            picture_loaded(page)
    expect(page.locator("[data-scene]")).to_contain_text("at the beach")

    # Opened afresh, as someone coming back to it: no flash message, the log at its newest message.
    page.reload()
    online(page)
    picture_loaded(page)
    expect(page.locator("#chat-panel")).to_be_visible()  # the side panel, open beside the log
    settle(page)
    shoot_for_readme(page, "chat-desktop")

    # The same chat on a phone, signed in as the same user.
    phone = browser.new_context(
        viewport=PHONE,
        base_url=demo_site,
        is_mobile=True,
        has_touch=True,
        storage_state=context.storage_state(),
    )
    small = phone.new_page()
    small.set_default_timeout(20_000)
    small.on("pageerror", lambda exc: errors.append(str(exc)))
    small.goto(page.url)
    online(small)
    picture_loaded(small)
    expect(small.get_by_label(f"Message to {NAME}")).to_be_in_viewport()
    settle(small)
    shoot_for_readme(small, "chat-phone")
    phone.close()

    # The character editor: every card field, in sections.
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Personality & scenario").click()
    expect(page.locator("#personality")).to_have_attribute("open", "")
    page.evaluate("() => window.scrollTo(0, 0)")  # the sections' list, and the open one below it
    settle(page)
    shoot_for_readme(page, "character-editor")
    context.close()

    for name in ("landing", "wizard-step4", "chat-desktop", "chat-phone", "character-editor"):
        assert (SCREENSHOTS / "readme" / f"{name}.png").stat().st_size < 300_000, name
    assert not errors, errors
