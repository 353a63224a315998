"""The chat page's voice in real Chromium: replies read aloud clip by clip, replay, push-to-talk.

The site is the real one (Daphne with its in-process worker), its speech and
speech-to-text connections pointed at the fake audio server of ``tests/fakes``
(``voice_backend``): the reply's sentences are synthesised on the voice queue
while it streams, and the page plays what the server sends. Two tests need
what a healthy server never does on cue (a failed voice, clips to a page
nobody has clicked): they run against the stand-ins of ``voice_doubles``
(``double_backend``, the site with ``tests.browser.voice_settings``), which
publish "audio" events at the contract's paths through the real channel layer.

Chromium plays sound in these tests (``--autoplay-policy=no-user-gesture-required``;
the "click to enable sound" test brings the usual policy back in the page).
The microphone is Chromium's fake device (a beeping tone).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.browser.helpers import online
from tests.browser.test_journey import create_companion, register
from tests.conftest import require_service
from tests.fakes.site import SiteFailed, run_site, site_env

MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
AUTOPLAY = ["--autoplay-policy=no-user-gesture-required"]
REPLY = "Hello there. The sea is calm today. Shall we walk along it?"

pytestmark = pytest.mark.browser

# ---- the back end the page talks to -------------------------------------------------------


@dataclass
class DoubleVoice:
    """The contract's endpoints as stand-ins (tests/browser/voice_doubles.py)."""

    site: object
    transcript: str = "Hello from the microphone"
    real: bool = False

    def live_clips(
        self, page, conversation_id: str, order: list[int] | None = None, *, fail: bool = False
    ) -> int:
        """The newest reply's clips arrive as "audio" events (in ``order``); its message id."""
        response = page.request.post(
            f"/test-voice/c/{conversation_id}/live/", data={"order": order or [], "fail": fail}
        )
        assert response.ok, response.text()
        return response.json()["message_id"]


@dataclass
class RealVoice:
    """The site's own voice, its speech back ends pointed at the fake audio server."""

    site: object
    speech: object  # the FakeAudioServer
    transcript: str = ""
    real: bool = True

    def live_clips(
        self, page, conversation_id: str, order: list[int] | None = None, *, fail: bool = False
    ) -> int:
        """The reply being read aloud: its clips come from the pipeline by themselves."""
        page.wait_for_function("() => window.companionVoice.messageId !== null", timeout=20_000)
        return page.evaluate("window.companionVoice.messageId")


def _site_env(fake_backends, var, extra: dict) -> dict:
    llm, sd = fake_backends
    return site_env(
        {
            "LLM_BASE_URL": llm.base_url,
            "LLM_MODEL": "fake-model",
            "SD_API_URL": sd.base_url,
            "RATELIMIT_REGISTER": "100/1h",
            "RATELIMIT_CHAT_MESSAGE": "30/1h",
            **extra,
        },
        var_dir=var,
    )


@pytest.fixture(scope="module")
def fake_speech():
    from tests.fakes.audio_server import FakeAudioServer

    with FakeAudioServer() as server:
        yield server


@pytest.fixture(scope="module")
def voice_backend(tmp_path_factory, fake_backends, fake_speech):
    var = tmp_path_factory.mktemp("voice-site")
    env = _site_env(
        fake_backends,
        var,
        {
            "TTS_BASE_URL": fake_speech.base_url,
            "TTS_FORMAT": "wav",
            "TTS_VOICE": "af_bella",
            "STT_BASE_URL": fake_speech.origin,
            "STT_MODEL": "whisper-1",
        },
    )
    try:
        with run_site(env, var_dir=var) as running:
            yield RealVoice(running, fake_speech, fake_speech.transcript)
    except SiteFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def double_backend(tmp_path_factory, fake_backends):
    var = tmp_path_factory.mktemp("voice-doubles-site")
    env = _site_env(fake_backends, var, {"DJANGO_SETTINGS_MODULE": "tests.browser.voice_settings"})
    try:
        with run_site(env, var_dir=var) as running:
            yield DoubleVoice(running)
    except SiteFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def voice_browser():
    """Chromium with a fake microphone, allowed to play sound without a click first."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        require_service("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *MEDIA_ARGS, *AUTOPLAY]
        )
        yield browser
        browser.close()


def _chat_page(browser, backend, fake_backends, *, voice_on: bool = True):
    """A new user and companion (its voice switched on in its settings), on its chat page."""
    llm, _ = fake_backends
    llm.reset()
    llm.token_delay = 0
    llm.set_reply(REPLY)
    context = browser.new_context(viewport=DESKTOP, base_url=backend.site.base_url)
    context.grant_permissions(["microphone"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    register(page, f"v{uuid.uuid4().hex[:8]}", screenshots=False)
    create_companion(page, "Ren", screenshots=False)
    if voice_on:
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("link", name="Model & behaviour").click()  # opens the folded section
        page.get_by_label("Speak replies aloud").check()
        page.get_by_role("combobox", name="Voice").fill("nova")
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator(".messages")).to_contain_text("Settings saved")
        page.get_by_role("link", name="← Back to chat").click()
    online(page)
    return page, errors


@pytest.fixture
def voice_chat(voice_browser, voice_backend, fake_backends):
    voice_backend.speech.reset()
    page, errors = _chat_page(voice_browser, voice_backend, fake_backends)
    yield page, voice_backend, fake_backends[0]
    page.context.close()
    assert not errors, errors


@pytest.fixture
def double_chat(voice_browser, double_backend, fake_backends):
    page, errors = _chat_page(voice_browser, double_backend, fake_backends)
    yield page, double_backend, fake_backends[0]
    page.context.close()
    assert not errors, errors


def conversation_id(page) -> str:
    return page.locator(".chat[data-conversation-id]").get_attribute("data-conversation-id")


def clips(page, message_id):
    return page.locator(f"audio.voice-clip[data-message-id='{message_id}']")


def media_state(page, message_id) -> list[dict]:
    """Each clip element's state, by index: what the browser itself says of it."""
    return page.evaluate(
        """(id) => [...document.querySelectorAll(`audio.voice-clip[data-message-id="${id}"]`)]
            .map((a) => ({index: Number(a.dataset.index), ended: a.ended, paused: a.paused,
                          time: a.currentTime, duration: a.duration}))
            .sort((x, y) => x.index - y.index)""",
        str(message_id),
    )


def played(page, message_id) -> list[int]:
    return page.evaluate("(id) => window.companionVoice.playedOf(id)", message_id)


def wait_played(page, message_id, indexes: list[int]) -> None:
    page.wait_for_function(
        "([id, want]) => JSON.stringify(window.companionVoice.playedOf(id)) === JSON.stringify(want)",
        arg=[message_id, indexes],
        timeout=20_000,
    )


def assert_all_ended(page, message_id, count: int) -> None:
    states = media_state(page, message_id)
    assert [s["index"] for s in states] == list(range(count))
    assert all(s["ended"] and s["paused"] for s in states), states
    assert all(s["time"] > 0 for s in states), states  # each one really played through


# ---- reading aloud ------------------------------------------------------------------------


def test_a_streaming_reply_is_played_in_order_and_replayed_after_a_reload(voice_chat):
    page, backend, llm = voice_chat
    llm.hold_after(4)  # the reply is still being written while its first clips play
    page.get_by_label("Message to Ren").fill("Shall we go to the sea?")
    page.keyboard.press("Enter")
    streaming = page.locator(".chat-log .bubble.assistant.streaming")
    expect(streaming.locator(".bubble-text")).to_contain_text("Hello")  # its first words are here

    # The clips come out of order (2, 0, 1): the page plays them by index, from index 0 on.
    message_id = backend.live_clips(page, conversation_id(page), [2, 0, 1])
    page.wait_for_function("() => window.companionVoice.played.length >= 1", timeout=20_000)
    assert played(page, message_id)[0] == 0
    expect(streaming).to_have_count(1)  # sound began before the reply was finished…
    assert backend.speech.speech_requests  # …synthesised while the model was still writing it
    llm.release()
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    count = 3  # "Hello there." "The sea is calm today." "Shall we walk along it?"
    wait_played(page, message_id, list(range(count)))
    assert_all_ended(page, message_id, count)
    bubble = page.locator(f"#message-{message_id}")
    expect(bubble.locator('.bubble-action[data-action="listen"]')).to_have_attribute("aria-pressed", "false")

    # After a reload the page has no clips: Listen asks the server for them (no new synthesis).
    asked: list[str] = []
    page.on("request", lambda r: asked.append(f"{r.method} {r.url}"))
    page.reload()
    online(page)
    expect(clips(page, message_id)).to_have_count(0)
    listen = bubble.get_by_role("button", name="Read this reply aloud")
    bubble.hover()
    listen.click()
    expect(bubble.locator('.bubble-action[data-action="listen"]')).to_have_attribute("aria-pressed", "true")
    wait_played(page, message_id, list(range(count)))
    assert_all_ended(page, message_id, count)
    assert any(re.search(rf"GET .*/messages/{message_id}/audio/$", a) for a in asked), asked
    assert not any(a.startswith("POST") and "/speak/" in a for a in asked), asked
    expect(bubble.locator('.bubble-action[data-action="listen"]')).to_have_attribute("aria-pressed", "false")


def test_listen_has_a_reply_without_clips_spoken_and_stop_stops_it(voice_chat):
    page, backend, _ = voice_chat
    greeting = page.locator(".chat-log .bubble.assistant[data-message-id]").first
    message_id = int(greeting.get_attribute("data-message-id"))
    greeting.hover()
    greeting.get_by_role("button", name="Read this reply aloud").click()
    # GET …/audio/ had none, so POST …/speak/ queued them; they come as events and play in order.
    page.wait_for_function("(id) => window.companionVoice.playedOf(id).length >= 1", arg=message_id)
    wait_played(page, message_id, [0, 1, 2] if not backend.real else played(page, message_id))

    # Once more, and stopped at once: the clip playing pauses and nothing further plays.
    greeting.hover()
    greeting.get_by_role("button", name="Read this reply aloud").click()
    page.wait_for_function("(id) => window.companionVoice.messageId === id", arg=message_id)
    greeting.get_by_role("button", name="Stop reading this reply aloud").click()
    assert page.evaluate("window.companionVoice.messageId") is None
    states = media_state(page, message_id)
    assert all(s["paused"] for s in states), states


def test_a_voice_that_failed_leaves_a_note_and_the_chat_working(double_chat):
    page, backend, _ = double_chat
    page.get_by_label("Message to Ren").fill("Tell me about the sea.")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.assistant[data-message-id]")).to_have_count(2)  # greeting, reply
    message_id = backend.live_clips(page, conversation_id(page), fail=True)
    bubble = page.locator(f"#message-{message_id}")
    expect(bubble.locator("[data-voice-note]")).to_have_text("Voice unavailable: text only.")
    expect(page.locator("[data-error]")).to_be_hidden()  # not a failed reply: no error, no Retry
    # The chat goes on.
    page.get_by_label("Message to Ren").fill("Never mind.")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.user[data-message-id]")).to_have_count(2)


# The autoplay policy as Chromium applies it to a page nobody has clicked. Playwright's own
# evaluations count as a user gesture, so a real page would be unlocked by the test itself:
# play() is refused here until a trusted click, as the policy refuses it.
HOLD_BACK_SOUND = """
(() => {
  let clicked = false;
  addEventListener("click", (e) => { if (e.isTrusted) clicked = true; }, true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!clicked) return Promise.reject(new DOMException("no gesture", "NotAllowedError"));
    return play.call(this);
  };
})();
"""


def test_the_browser_holding_back_sound_is_explained_and_one_click_plays(double_chat):
    page, backend, _ = double_chat
    page.get_by_label("Message to Ren").fill("Hello?")
    page.keyboard.press("Enter")
    expect(page.locator(".chat-log .bubble.assistant[data-message-id]")).to_have_count(2)  # greeting, reply
    page.context.add_init_script(HOLD_BACK_SOUND)
    page.reload()
    online(page)
    message_id = backend.live_clips(page, conversation_id(page), [1, 0, 2])
    unlock = page.get_by_role("button", name="Click to enable sound")
    expect(unlock).to_be_visible()
    assert page.evaluate("window.companionVoice.blocked") is True
    assert played(page, message_id) == []
    unlock.click()
    wait_played(page, message_id, [0, 1, 2])
    expect(unlock).to_be_hidden()
    assert_all_ended(page, message_id, 3)


# ---- push-to-talk -------------------------------------------------------------------------


def test_push_to_talk_puts_the_words_in_the_message_box(voice_chat):
    page, backend, _ = voice_chat
    mic = page.get_by_role("button", name="Record a voice message")
    expect(mic).to_be_visible()
    expect(mic).to_have_attribute("aria-pressed", "false")
    box = page.get_by_label("Message to Ren")
    box.fill("Listen:")

    mic.focus()
    page.keyboard.press("Space")  # the keyboard starts it…
    stop = page.get_by_role("button", name="Stop recording")
    expect(stop).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-mic-status]")).to_contain_text("Recording…")
    page.wait_for_timeout(1200)  # record a little of the fake device's tone
    page.keyboard.press("Enter")  # …and stops it
    expect(mic).to_have_attribute("aria-pressed", "false")

    words = backend.transcript or "Hello from the microphone"
    expect(box).to_have_value(f"Listen: {words}", timeout=20_000)
    expect(page.locator("[data-mic-status]")).to_contain_text("Your words are in the message box")
    # Nothing was sent: the user sends (or edits) the words.
    expect(page.locator(".chat-log .bubble.user")).to_have_count(0)


def test_send_at_once_sends_the_words_and_is_remembered(voice_chat):
    page, backend, _ = voice_chat
    page.get_by_label("Send at once").check()
    page.reload()
    online(page)
    expect(page.get_by_label("Send at once")).to_be_checked()
    mic = page.get_by_role("button", name="Record a voice message")
    mic.click()
    page.get_by_role("button", name="Stop recording").wait_for()
    page.wait_for_timeout(800)
    page.get_by_role("button", name="Stop recording").click()
    words = backend.transcript or "Hello from the microphone"
    expect(page.locator(".chat-log .bubble.user .bubble-text").last).to_have_text(words, timeout=20_000)


def test_a_refused_microphone_is_explained(voice_browser, voice_backend, fake_backends):
    page, errors = _chat_page(voice_browser, voice_backend, fake_backends, voice_on=False)
    page.context.clear_permissions()
    page.evaluate(
        """() => { navigator.mediaDevices.getUserMedia = () =>
             Promise.reject(new DOMException("denied", "NotAllowedError")); }"""
    )
    page.get_by_role("button", name="Record a voice message").click()
    expect(page.locator("[data-mic-status]")).to_contain_text("not allowed to use the microphone")
    expect(page.get_by_role("button", name="Record a voice message")).to_have_attribute(
        "aria-pressed", "false"
    )
    page.context.close()
    assert not errors, errors


def test_the_microphone_is_hidden_where_the_browser_cannot_record(
    voice_browser, voice_backend, fake_backends
):
    page, errors = _chat_page(voice_browser, voice_backend, fake_backends, voice_on=False)
    page.context.add_init_script("delete window.MediaRecorder;")
    page.reload()
    online(page)
    expect(page.locator("[data-mic-box]")).to_be_hidden()
    page.context.close()
    assert not errors, errors


def test_a_reply_written_again_is_read_aloud_in_its_new_words(voice_chat):
    page, backend, llm = voice_chat
    page.get_by_label("Message to Ren").fill("Shall we go to the sea?")
    page.keyboard.press("Enter")
    message_id = backend.live_clips(page, conversation_id(page))
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
    wait_played(page, message_id, [0, 1, 2])
    first = [clip.get_attribute("src") for clip in clips(page, message_id).all()]

    # "Again" keeps the message id: the new run's clips replace the old ones, and play.
    llm.set_reply("Of course we can. The tide is out right now. Bring your warm coat along.")
    bubble = page.locator(f"#message-{message_id}")
    bubble.hover()
    bubble.get_by_role("button", name="Write this reply again").click()
    page.wait_for_function(
        "([id, old]) => { const urls = [...document.querySelectorAll("
        "`audio.voice-clip[data-message-id='${id}']`)].map((a) => a.getAttribute('src'));"
        " return urls.length === 3 && urls.every((u) => !old.includes(u)); }",
        arg=[message_id, first],
        timeout=30_000,
    )
    wait_played(page, message_id, [0, 1, 2])
    assert_all_ended(page, message_id, 3)
