"""A real site in a real browser: Daphne + an in-process Celery worker + Chromium.

The server runs as a separate process in the embedded mode (its own SQLite
file, in-memory broker and layer, a real Celery worker thread), pointed at
the fake LLM and picture servers this test process runs. Chromium is
Debian's, driven by Playwright.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.fakes.site import SiteFailed, run_site, site_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "screenshots" / "tmp"))
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module: Playwright's sync API holds an event loop while it runs,
    which would stop the async tests that follow."""
    if not Path(CHROMIUM).exists():
        require_service("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def fake_backends():
    from tests.fakes.llm_server import FakeLLMServer
    from tests.fakes.sd_server import FakeSDServer

    with FakeLLMServer() as llm, FakeSDServer() as sd:
        yield llm, sd


@pytest.fixture(scope="session")
def live_site(tmp_path_factory, fake_backends):
    """Daphne with its in-process worker, for the whole session."""
    llm, sd = fake_backends
    var = tmp_path_factory.mktemp("site")
    env = site_env(
        {
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "fake-model",
            "SD_API_URL": sd.base_url,
            "CHAT_RETRY_BACKOFF_BASE": "0.1",
            # Every browser user signs up from 127.0.0.1.
            "RATELIMIT_REGISTER": "100/1h",
            "RATELIMIT_CHAT_MESSAGE": "12/1h",  # an hour: a minute window could turn over mid-test
        },
        var_dir=var,
    )
    try:
        with run_site(env, var_dir=var) as running:
            yield running
    except SiteFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def site(live_site):
    """The site's base URL."""
    return live_site.base_url


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport=DESKTOP, base_url=site)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    yield page
    context.close()
    assert not errors, f"browser errors: {errors}"


@pytest.fixture
def chat(browser, site, fake_backends):
    """A new user with a new companion, on its chat page; clipboard allowed."""
    from playwright.sync_api import expect

    from tests.browser.test_journey import create_companion, register

    llm, _ = fake_backends
    llm.token_delay = 0
    llm.reset()
    context = browser.new_context(
        viewport=DESKTOP, base_url=site, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    register(page, f"u{uuid.uuid4().hex[:8]}", screenshots=False)
    create_companion(page, "Ren", screenshots=False)
    expect(page.locator("[data-connection]")).to_have_text("Online")
    yield page, llm
    context.close()
    assert not errors, errors


def shoot(page, name: str) -> None:
    """Full-page screenshot into the screenshots folder (``make screenshots``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def optimise_png(source: Path, target: Path) -> Path:
    """``source`` as a palette PNG at ``target``: a screenshot's few colours, a tenth of the bytes."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as shot:
        small = shot.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(target, format="PNG", optimize=True)
    return target


def shoot_for_readme(page, name: str) -> Path:
    """What the visitor sees (the viewport), for the README and the landing page, into
    ``screenshots/tmp/readme/``; ``make screenshots`` copies that folder to ``docs/screenshots/``."""
    path = SCREENSHOTS / "readme" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    return optimise_png(path, path)
