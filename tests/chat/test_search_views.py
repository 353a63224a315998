"""The search page and the header's box: results, filters, and another user's ids (404)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.chat.factories import add_reply, add_user_message, make_chat, make_group_of
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db
URL = reverse("search")


@pytest.fixture
def mika(user):
    return make_companion(user, name="Mika")


def test_it_needs_sign_in(client):
    response = client.get(URL, {"q": "x"})
    assert response.status_code == 302 and "login" in response["Location"]


def test_it_rejects_post(client, user):
    client.force_login(user)
    assert client.post(URL, {"q": "x"}).status_code == 405


def test_results_show_snippet_companion_conversation_and_link(client, user, mika):
    chat = make_chat(mika, title="Harbour days")
    reply = add_reply(chat, mika, "The <b>lighthouse</b> keeper")
    client.force_login(user)
    response = client.get(URL, {"q": "lighthouse"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "&lt;b&gt;<mark>lighthouse</mark>&lt;/b&gt; keeper" in body
    assert "Harbour days" in body and "Mika" in body
    assert f"{reverse('chat:conversation', args=[chat.pk])}#message-{reply.pk}" in body


def test_the_header_has_the_search_box_when_signed_in(client, user):
    assert b"data-search-box" not in client.get(reverse("accounts:login")).content
    client.force_login(user)
    body = client.get(reverse("companions:list")).content.decode()
    assert 'role="search"' in body and 'aria-keyshortcuts="/"' in body and "data-search-box" in body


def test_no_results_says_so(client, user, mika):
    client.force_login(user)
    assert b"No messages match." in client.get(URL, {"q": "nothing"}).content


def test_filters_narrow_results(client, user, mika):
    rin = make_companion(user, name="Rin")
    group = make_group_of(user, [mika, rin], title="Crew")
    said = add_user_message(group, "lighthouse from me")
    from_rin = add_reply(group, rin, "lighthouse from rin")
    client.force_login(user)
    body = client.get(URL, {"q": "lighthouse", "author": "me"}).content.decode()
    assert f"#message-{said.pk}" in body and f"#message-{from_rin.pk}" not in body
    body = client.get(
        URL, {"q": "lighthouse", "author": f"c{rin.pk}", "conversation": group.pk}
    ).content.decode()
    assert f"#message-{from_rin.pk}" in body and f"#message-{said.pk}" not in body


def test_pages_link_to_each_other(client, user, mika):
    chat = make_chat(mika)
    for n in range(25):
        add_reply(chat, mika, f"lighthouse {n}")
    client.force_login(user)
    first = client.get(URL, {"q": "lighthouse"}).content.decode()
    assert 'rel="next"' in first and 'rel="prev"' not in first
    second = client.get(URL, {"q": "lighthouse", "page": 2}).content.decode()
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert second.count("data-search-hit=") == 5


@pytest.mark.parametrize("field", ["companion", "conversation", "author"])
def test_another_users_ids_as_filters_are_not_found(client, user, other_user, field):
    theirs = make_companion(other_user, name="Theirs")
    their_chat = make_chat(theirs, title="Their secrets")
    add_reply(their_chat, theirs, "private lighthouse")
    make_companion(user, name="Mine")
    client.force_login(user)
    value = {"companion": theirs.pk, "conversation": their_chat.pk, "author": f"c{theirs.pk}"}[field]
    response = client.get(URL, {"q": "lighthouse", field: value})
    assert response.status_code == 404
    assert b"private lighthouse" not in response.content and b"Their secrets" not in response.content


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x" * 201},
        {"q": "x", "since": "not a date"},
        {"q": "x", "since": "2026-05-02", "until": "2026-05-01"},
        {"q": "x", "page": "0"},
        {"q": "x", "page": "999"},
    ],
)
def test_bad_input_is_a_form_error_not_a_crash(client, user, mika, params):
    add_reply(make_chat(mika), mika, "x marks the spot")
    client.force_login(user)
    response = client.get(URL, params)
    assert response.status_code == 200
    assert b"errorlist" in response.content and b"data-search-results" not in response.content
