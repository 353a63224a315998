"""The Memories page: list, search, add, edit, pin, delete, clear; owner only; bad input; limits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from memories.models import MEMORY_MAX_CHARS, Memory
from memories.selectors import PAGE_SIZE
from tests.companions.factories import make_companion
from tests.memories.conftest import add_memory

pytestmark = pytest.mark.django_db


def url(name: str, companion, memory=None) -> str:
    args = [companion.pk] if memory is None else [companion.pk, memory.pk]
    return reverse(f"memories:{name}", args=args)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_the_list_shows_the_companions_memories_newest_first_with_counts(signed_in, companion, user):
    add_memory(companion, "older memory")
    add_memory(companion, "newer memory", pinned=True)
    add_memory(make_companion(user, name="Aya"), "another companion's")
    page = signed_in.get(url("list", companion))
    assert page.status_code == 200
    assert [m.text for m in page.context["page"].object_list] == ["newer memory", "older memory"]
    assert page.context["counts"].total == 2 and page.context["counts"].pinned == 1
    assert b"another companion" not in page.content
    assert url("list", companion) == f"/companions/{companion.pk}/memories/"


def test_memory_text_is_inert(signed_in, companion):
    add_memory(companion, "<script>alert(1)</script>")
    page = signed_in.get(url("list", companion))
    assert b"<script>alert(1)</script>" not in page.content
    assert b"&lt;script&gt;" in page.content


def test_the_list_is_paginated(signed_in, companion):
    for n in range(PAGE_SIZE + 3):
        add_memory(companion, f"memory number {n}", vector=None)
    first = signed_in.get(url("list", companion))
    assert len(first.context["page"].object_list) == PAGE_SIZE
    second = signed_in.get(url("list", companion) + "?page=2")
    assert len(second.context["page"].object_list) == 3
    assert signed_in.get(url("list", companion) + "?page=nonsense").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sister", ["The user's sister is called Mara"]),
        ("sist", ["The user's sister is called Mara"]),  # the last word as a prefix
        ("'s sister", ["The user's sister is called Mara"]),  # as typed (a substring)
        ("tea Mara", []),
        ('" OR * NEAR(', []),  # search syntax is just text
    ],
)
def test_search_by_words_and_substring(signed_in, companion, query, expected):
    add_memory(companion, "The user's sister is called Mara", vector=None)
    add_memory(companion, "The user likes green tea", vector=None)
    page = signed_in.get(url("list", companion), {"q": query})
    assert page.status_code == 200
    assert [m.text for m in page.context["page"].object_list] == expected


def test_a_too_long_search_is_an_error_not_a_crash(signed_in, companion):
    page = signed_in.get(url("list", companion), {"q": "x" * 500})
    assert page.status_code == 200 and page.context["search"].errors["q"]


def test_adding_a_memory(signed_in, companion, user):
    response = signed_in.post(url("add", companion), {"text": "  My sister is Mara ", "pinned": "on"})
    assert response.status_code == 302 and response["Location"] == url("list", companion)
    memory = Memory.objects.get()
    assert (memory.text, memory.pinned, memory.source) == ("My sister is Mara", True, "manual")
    assert memory.owner == user


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Write what the companion should remember."),
        ("x" * (MEMORY_MAX_CHARS + 1), f"at most {MEMORY_MAX_CHARS} characters"),
        ("a\x00b", "NUL"),
    ],
)
def test_a_bad_memory_is_refused_with_a_clear_error(signed_in, companion, text, message):
    page = signed_in.post(url("add", companion), {"text": text})
    assert page.status_code == 200
    assert message in " ".join(page.context["form"].errors["text"])
    assert not Memory.objects.exists()


def test_a_duplicate_memory_is_refused(signed_in, companion):
    add_memory(companion, "My sister is Mara", source="manual")
    page = signed_in.post(url("add", companion), {"text": "my sister is mara"})
    assert "already has this memory" in " ".join(page.context["form"].errors["text"])
    assert Memory.objects.count() == 1


def test_editing_a_memory_inline_returns_to_the_page_it_came_from(signed_in, companion):
    memory = add_memory(companion, "The user lives in Berlin")
    back = url("list", companion) + "?q=Berlin&page=1"
    data = {"text": "The user lives in Madrid", "next": back}
    response = signed_in.post(url("edit", companion, memory), data)
    assert response["Location"] == back
    memory.refresh_from_db()
    assert memory.text == "The user lives in Madrid" and memory.user_edited


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "/accounts/"])
def test_edit_never_redirects_elsewhere(signed_in, companion, next_url):
    memory = add_memory(companion, "The user lives in Berlin")
    response = signed_in.post(url("edit", companion, memory), {"text": "Madrid", "next": next_url})
    assert response["Location"] == url("list", companion)


def test_the_edit_page_shows_errors(signed_in, companion):
    memory = add_memory(companion, "The user lives in Berlin")
    assert signed_in.get(url("edit", companion, memory)).status_code == 200
    page = signed_in.post(url("edit", companion, memory), {"text": "   "})
    assert page.status_code == 200 and page.context["form"].errors["text"]
    memory.refresh_from_db()
    assert memory.text == "The user lives in Berlin"


def test_pin_and_unpin(signed_in, companion):
    memory = add_memory(companion, "The user lives in Berlin")
    signed_in.post(url("pin", companion, memory), {"pinned": "on"})
    assert Memory.objects.get(pk=memory.pk).pinned
    signed_in.post(url("pin", companion, memory), {})
    assert not Memory.objects.get(pk=memory.pk).pinned


def test_delete_asks_first(signed_in, companion):
    memory = add_memory(companion, "The user lives in Berlin")
    page = signed_in.get(url("delete", companion, memory))
    assert page.status_code == 200 and b"The user lives in Berlin" in page.content
    assert Memory.objects.filter(pk=memory.pk).exists()
    signed_in.post(url("delete", companion, memory))
    assert not Memory.objects.filter(pk=memory.pk).exists()


def test_clear_forgets_all_of_the_companions_memories(signed_in, companion, user):
    add_memory(companion, "one")
    add_memory(companion, "two", pinned=True)
    other = add_memory(make_companion(user, name="Aya"), "kept")
    assert signed_in.get(url("clear", companion)).status_code == 200
    signed_in.post(url("clear", companion))
    assert list(Memory.objects.values_list("pk", flat=True)) == [other.pk]


def test_another_users_companion_and_memories_are_404(client, other_user, companion):
    memory = add_memory(companion, "The user lives in Berlin")
    client.force_login(other_user)
    assert client.get(url("list", companion)).status_code == 404
    assert client.get(url("clear", companion)).status_code == 404
    assert client.post(url("clear", companion)).status_code == 404
    assert client.post(url("add", companion), {"text": "hijack"}).status_code == 404
    for name in ("edit", "pin", "delete"):
        assert client.get(url(name, companion, memory)).status_code in (404, 405)
        hijack = {"text": "hijack", "pinned": "on"}
        assert client.post(url(name, companion, memory), hijack).status_code == 404
    memory.refresh_from_db()
    assert memory.text == "The user lives in Berlin" and not memory.pinned
    assert Memory.objects.count() == 1


def test_a_memory_through_another_of_my_companions_is_404(signed_in, companion, user):
    memory = add_memory(companion, "The user lives in Berlin")
    aya = make_companion(user, name="Aya")
    assert signed_in.post(url("delete", aya, memory)).status_code == 404
    assert Memory.objects.filter(pk=memory.pk).exists()


def test_the_owner_field_is_ignored(signed_in, companion, other_user):
    signed_in.post(url("add", companion), {"text": "mine", "owner": other_user.pk, "source": "extracted"})
    memory = Memory.objects.get()
    assert memory.owner_id == companion.owner_id and memory.source == "manual"


def test_pages_need_a_sign_in_and_writes_are_post_only(client, signed_in, companion):
    memory = add_memory(companion, "x")
    assert signed_in.get(url("add", companion)).status_code == 405
    assert signed_in.get(url("pin", companion, memory)).status_code == 405
    signed_in.logout()
    response = client.get(url("list", companion))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_writes_need_the_csrf_token(companion, user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url("add", companion), {"text": "x"}).status_code == 403
    assert not Memory.objects.exists()


def test_writes_are_rate_limited(signed_in, companion, rate_limits):
    rate_limits["memory_change"] = "2/1h"
    for n in range(2):
        assert signed_in.post(url("add", companion), {"text": f"memory {n}"}).status_code == 302
    response = signed_in.post(url("add", companion), {"text": "one too many"})
    assert response.status_code == 429 and response["Retry-After"]
    assert Memory.objects.count() == 2


def test_the_settings_and_chat_pages_link_here(signed_in, companion):
    link = url("list", companion).encode()
    assert link in signed_in.get(reverse("companions:settings", args=[companion.pk])).content
    from tests.chat.factories import make_chat

    chat = make_chat(companion)
    assert link in signed_in.get(reverse("chat:conversation", args=[chat.pk])).content


def test_a_group_chat_links_each_member_s_memories(signed_in, user, companion):
    from tests.chat.factories import make_group_of
    from tests.companions.factories import make_companion

    other = make_companion(user, name="Rin")
    group = make_group_of(user, [companion, other])
    page = signed_in.get(reverse("chat:conversation", args=[group.pk])).content
    assert url("list", companion).encode() in page and url("list", other).encode() in page
