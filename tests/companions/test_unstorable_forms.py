"""A NUL in any text field of the site's forms is a form error (or is dropped), never a 500.

A form body cannot carry a lone surrogate (Django decodes it with
replacement characters), but it can carry ``%00``; PostgreSQL refuses a NUL
in text and JSON alike. Django's ``CharField`` already refuses it; these
posts check every form that takes text, including the wizard's "back",
which keeps unvalidated input in the draft's JSON.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from chat.models import Conversation
from companions.models import Companion, CompanionDraft
from tests.chat.factories import add_exchange, make_chat
from tests.companions.factories import VALID, make_companion
from tests.companions.test_card_views import post_card
from tests.companions.test_cards import LOREBOOK, v2_card
from tests.companions.test_wizard import step_data, step_url

NUL = "\x00"


def no_nul_anywhere(value) -> bool:
    return NUL not in json.dumps(value, ensure_ascii=False)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_the_wizards_back_keeps_what_was_typed_without_the_nul(signed_in, user):
    for n in (1, 2, 3):
        assert signed_in.post(step_url(n), step_data(n)).status_code == 302
    data = step_data(4, name=f"Mi{NUL}ka", backstory=f"By the{NUL} sea")
    response = signed_in.post(step_url(4), {**data, "action": "back"})
    assert response.status_code == 302
    draft = CompanionDraft.objects.get(owner=user)
    assert (draft.data["name"], draft.data["backstory"]) == ("Mika", "By the sea")


def test_a_wizard_step_refuses_a_nul(signed_in, user):
    for n in (1, 2, 3):
        signed_in.post(step_url(n), step_data(n))
    response = signed_in.post(step_url(4), step_data(4, name=f"Mi{NUL}ka"))
    assert response.status_code == 200
    assert response.context["form"].errors["name"]
    assert no_nul_anywhere(CompanionDraft.objects.get(owner=user).data)


def test_the_settings_form_refuses_a_nul(signed_in, user):
    companion = make_companion(user)
    data = {
        **{name: value for name, value in VALID.items() if value not in ("", None)},
        "backstory": f"Grew up{NUL} by the sea.",
        "config-temperature": "0.8",
        "config-max_reply_tokens": "400",
        "config-image_mode": "on_request",
    }
    response = signed_in.post(reverse("companions:settings", args=[companion.pk]), data)
    assert response.status_code == 200
    assert response.context["form"].errors["backstory"]
    companion.refresh_from_db()
    assert companion.backstory == VALID["backstory"]


def test_the_group_form_refuses_a_nul_in_the_title(signed_in, user):
    members = [make_companion(user, name=name).pk for name in ("Mika", "Rin")]
    response = signed_in.post(reverse("groups:create"), {"title": f"Beach{NUL}", "companions": members})
    assert response.status_code == 200
    assert response.context["form"].errors["title"]
    assert not Conversation.objects.exists()


def test_the_chat_forms_refuse_a_nul(signed_in, user):
    """Renaming a chat, the no-JavaScript send and edit: refused with a message, nothing stored."""
    companion = make_companion(user)
    chat = make_chat(companion, title="Beach day")
    said, _ = add_exchange(chat, companion, "hi", "hello")
    page = reverse("chat:conversation", args=[chat.pk])
    response = signed_in.post(reverse("chat:rename", args=[chat.pk]), {"title": f"Sea{NUL}side"})
    assert response.status_code == 302 and response["Location"] == page
    response = signed_in.post(reverse("chat:send", args=[chat.pk]), {"content": f"sw{NUL}im?"})
    assert response.status_code == 302 and response["Location"] == page
    edit = reverse("chat:edit", args=[chat.pk, said.pk])
    response = signed_in.post(edit, {"content": f"h{NUL}i"}, follow=True)
    assert response.status_code == 200
    assert len(list(response.context["messages"])) == 3  # each refusal was shown
    chat.refresh_from_db()
    assert chat.title == "Beach day"
    assert list(chat.messages.values_list("content", flat=True)) == ["hi", "hello"]
    assert not chat.messages.filter(edited_at__isnull=False).exists()


def test_the_profile_form_refuses_a_nul(signed_in, user):
    response = signed_in.post(
        reverse("accounts:profile"), {"display_name": f"Al{NUL}ice", "email": user.email}
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert NUL not in user.display_name


@pytest.mark.parametrize("bad", [NUL, "\ud800"], ids=["nul", "lone_surrogate"])
def test_a_card_with_unstorable_text_imports_without_it(signed_in, user, bad):
    card = v2_card(
        name=f"Sera{bad}phina",
        scenario=f"A glade{bad}.",
        character_book={**LOREBOOK, "entries": [{"keys": [f"k{bad}"], "content": f"c{bad}"}]},
        **{f"x{bad}": [bad]},
    )
    response = post_card(signed_in, json.dumps(card).encode(), "card.json")  # JSON escapes: \u0000, \ud800
    assert response.status_code == 302
    companion = Companion.objects.get(owner=user)
    assert companion.name.startswith("Sera") and bad not in companion.name
    assert no_nul_anywhere(companion.config)
    json.dumps(companion.config, ensure_ascii=False).encode("utf-8")  # no surrogate left either
