"""The Export menu's downloads and the "Import a chat" page: owner, outsider, GET and POST."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat.models import Conversation, Message
from tests.chat.factories import add_exchange, make_chat
from tests.chat.sillytavern import FIXTURE, st_file, st_header, st_user
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(companion):
    conversation = make_chat(companion, greeting="Hey you!")
    add_exchange(conversation, companion, "Hi", "Hello")
    return conversation


def export_url(conversation, fmt: str) -> str:
    return reverse("chat:export", args=[conversation.pk, fmt])


def upload(data: bytes, name: str = "chat.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("jsonl", "application/jsonl"), ("md", "text/markdown"), ("json", "application/json")],
)
def test_it_downloads_each_format(client, user, chat, fmt, content_type):
    client.force_login(user)
    response = client.get(export_url(chat, fmt))
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert f".{fmt}" in response["Content-Disposition"]
    assert b"Hello" in response.content


def test_it_checks_the_owner_of_an_export(client, other_user, chat):
    client.force_login(other_user)
    assert client.get(export_url(chat, "jsonl")).status_code == 404


def test_an_unknown_format_is_not_found(client, user, chat):
    client.force_login(user)
    assert client.get(export_url(chat, "exe")).status_code == 404


def test_an_export_takes_only_get(client, user, chat):
    client.force_login(user)
    assert client.post(export_url(chat, "jsonl")).status_code == 405


def test_an_export_needs_a_login(client, chat):
    response = client.get(export_url(chat, "jsonl"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_the_conversation_page_offers_the_three_exports(client, user, chat):
    client.force_login(user)
    page = client.get(reverse("chat:conversation", args=[chat.pk])).content.decode()
    for fmt in ("jsonl", "md", "json"):
        assert export_url(chat, fmt) in page


def test_the_import_page_is_linked_from_the_companion_and_its_chats(client, user, companion):
    client.force_login(user)
    link = f"{reverse('chat:import')}?companion={companion.pk}"
    assert link in client.get(reverse("companions:detail", args=[companion.pk])).content.decode()
    assert link in client.get(reverse("chat:chats", args=[companion.pk])).content.decode()
    assert reverse("chat:import") in client.get(reverse("groups:list")).content.decode()


def test_the_import_form_offers_only_your_companions(client, user, companion, other_user):
    theirs = make_companion(other_user, name="Zed")
    client.force_login(user)
    response = client.get(reverse("chat:import"), {"companion": companion.pk})
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<option value="{companion.pk}" selected>' in page
    assert theirs.name not in page


def test_an_import_makes_a_conversation_and_opens_it(client, user, companion):
    client.force_login(user)
    response = client.post(
        reverse("chat:import"), {"file": upload(FIXTURE.read_bytes()), "companion": companion.pk}
    )
    conversation = Conversation.objects.get(owner=user, transcript_origin__format="sillytavern")
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:conversation", args=[conversation.pk])
    assert conversation.messages.count() == 7


def test_a_bad_file_shows_each_problem_with_its_line_and_imports_nothing(client, user, companion):
    client.force_login(user)
    data = st_file(st_header(), st_user("Hi"), "{oops", st_user(5))
    response = client.post(reverse("chat:import"), {"file": upload(data), "companion": companion.pk})
    assert response.status_code == 400
    page = response.content.decode()
    assert "line 3: not JSON" in page
    assert "line 4: &#x27;mes&#x27; should be text" in page
    assert not Conversation.objects.filter(owner=user).exists()


def test_it_checks_the_owner_of_the_companion(client, user, other_user):
    theirs = make_companion(other_user)
    client.force_login(user)
    response = client.post(
        reverse("chat:import"), {"file": upload(FIXTURE.read_bytes()), "companion": theirs.pk}
    )
    assert response.status_code == 404
    assert not Message.objects.exists()


def test_an_import_without_a_file_shows_the_form_again(client, user, companion):
    client.force_login(user)
    response = client.post(reverse("chat:import"), {"companion": companion.pk})
    assert response.status_code == 400
    assert not Conversation.objects.exists()


def test_an_import_body_over_the_limit_is_refused_before_parsing(client, user, companion, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 1024
    client.force_login(user)
    big = upload(b"x" * (300 * 1024))
    response = client.post(reverse("chat:import"), {"file": big, "companion": companion.pk})
    assert response.status_code == 413
    assert b"chat files can be at most" in response.content


def test_imports_are_rate_limited(client, user, companion, rate_limits):
    client.force_login(user)
    allowed = int(rate_limits["settings_change"].split("/")[0])
    for _ in range(allowed):
        client.post(reverse("chat:import"), {"file": upload(FIXTURE.read_bytes()), "companion": companion.pk})
    response = client.post(
        reverse("chat:import"), {"file": upload(FIXTURE.read_bytes()), "companion": companion.pk}
    )
    assert response.status_code == 429
    assert Conversation.objects.filter(owner=user).count() == allowed
