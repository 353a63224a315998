"""Chat texts in the user's language where no request says it: a websocket's frames and the
events forwarded to it (chat.language, chat.consumers)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from accounts.language import scope_language, user_language
from chat import consumers, events, language, services
from chat.publish import publish
from companionhub.errors import AppError
from companionhub.text import UNSTORABLE_MESSAGE
from tests.chat.factories import make_chat
from tests.chat.frames import unnumbered

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_socket_without_a_saved_language_speaks_as_its_handshake_said(user):
    user.language = ""
    header = [(b"accept-language", b"fr-FR, es;q=0.9, de;q=0.8")]
    assert user_language(user, fallback=scope_language({"headers": header})) == "es"
    cookie = {"cookies": {settings.LANGUAGE_COOKIE_NAME: "de"}, "headers": header}
    assert user_language(user, fallback=scope_language(cookie)) == "de"
    assert scope_language({"headers": [(b"accept-language", b"fr, ja")]}) is None
    assert scope_language({"headers": [(b"accept-language", b";;q=x,,")]}) is None


def test_a_users_saved_language_wins_over_the_handshake(user):
    user.language = "de"
    header = [(b"accept-language", b"es")]
    assert user_language(user, fallback=scope_language({"headers": header})) == "de"


def test_a_text_without_a_translation_stays_as_written():
    with translation.override("de"):
        assert language.translated("Not a catalogue entry at all.") == "Not a catalogue entry at all."
    assert language.translated("") == ""


@pytest.fixture
def speaks_german(user):
    """The user chose German (the socket reads the saved choice when it connects)."""
    user.language = "de"
    user.save(update_fields=["language"])


async def test_a_refused_frame_is_written_in_the_users_language(
    connect, companion, user, speaks_german, monkeypatch
):
    def refuse(**kwargs):
        # The service writes its refusal in whatever language is active.
        raise AppError("busy", f"written in {translation.get_language()}")

    monkeypatch.setattr(services, "message_send", refuse)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Hi", "client_id": "c1"})
    error = await client.receive_until("error")
    assert error == {"type": "error", "code": "busy", "message": "written in de"}


async def test_a_bad_frame_is_explained_in_the_users_language(
    connect, companion, user, speaks_german, monkeypatch
):
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "a\u0000b"})  # a NUL: the unstorable text
    error = await client.receive_until("error")
    with translation.override("de"):
        german = gettext(UNSTORABLE_MESSAGE)
    assert german != UNSTORABLE_MESSAGE  # the catalogue has it
    assert error["code"] == "bad_frame" and error["message"] == german


async def test_a_run_failure_from_a_worker_is_translated_on_its_way_out(
    connect, companion, user, speaks_german, monkeypatch
):
    # A worker writes it in English; the socket shows it in the user's language.
    monkeypatch.setattr(consumers, "translated", lambda text: f"{translation.get_language()}: {text}")
    chat = await sync_to_async(make_chat)(companion)
    client = await connect(None, user=user, path=f"/ws/conversation/{chat.pk}/")
    await sync_to_async(publish)(chat.pk, events.error("timeout", "The reply took too long.", run_id="r1"))
    error = await client.receive_until("error")
    assert error["message"] == "de: The reply took too long." and error["code"] == "timeout"
    # Other events pass as they are.
    await sync_to_async(publish)(chat.pk, events.message_deleted(7))
    assert unnumbered(await client.receive()) == {"type": "message.deleted", "message_id": 7}
