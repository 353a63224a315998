"""A card's extras (extensions, unknown fields, lorebook) are capped, and read only where they are used.

The pen test stored 10 MB of extras in one card: every pipeline step and page
re-read them (2.8 s of worker CPU per reply), and the card's export was too
big to import again. Imports now keep at most ``CARD_EXTRAS_MAX_BYTES`` of
them, and only the reply step, the settings page and the export read the
column they live in.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import consumers, pipeline, services
from chat.models import Message, PipelineRun
from companions import cards
from companions.models import Companion
from tests.chat.factories import add_exchange, make_chat, make_group
from tests.companions.factories import make_companion
from tests.companions.test_card_views import post_card
from tests.companions.test_cards import LOREBOOK, v2_card

LIMIT = 20 * 1024


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.CARD_EXTRAS_MAX_BYTES = LIMIT


def json_bytes(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def big_lorebook(size: int) -> dict:
    """A lorebook of at least ``size`` bytes of JSON."""
    entry = {"keys": ["glade"], "content": "The glade is old. " * 50, "enabled": True}
    count = size // json_bytes(entry) + 1
    return {**LOREBOOK, "entries": [{**entry, "id": n} for n in range(count)]}


def extras_bytes(card: dict) -> int:
    return sum(json_bytes(card[name]) for name in ("unknown", "extensions", "character_book") if name in card)


def import_card(client, user, card: dict):
    client.force_login(user)
    response = post_card(client, json.dumps(card).encode(), "card.json")
    assert response.status_code == 302, response.content[:500]
    page = client.get(response["Location"])
    return Companion.objects.get(owner=user, name=card["data"]["name"]), page.content.decode()


# --- the cap ----------------------------------------------------------------------------


def test_a_large_lorebook_becomes_a_lorebook_not_a_card_extra(client, user):
    book = big_lorebook(3 * LIMIT)
    companion, page = import_card(client, user, v2_card(character_book=book))
    assert "character_book" not in companion.config["card"]
    assert companion.card_book.entries.count() == len(book["entries"])
    assert "left out" not in page


def test_a_lorebook_that_cannot_be_one_is_a_capped_extra_and_the_user_is_told(client, user, settings):
    settings.LOREBOOK_MAX_ENTRIES = 3
    companion, page = import_card(client, user, v2_card(character_book=big_lorebook(3 * LIMIT)))
    assert companion.card_book is None
    assert "could not become a lorebook" in page and "at most 3 are allowed" in page
    stored = companion.config["card"]
    assert "character_book" not in stored
    assert extras_bytes(stored) <= LIMIT
    assert stored["extensions"]["depth_prompt"] == {"prompt": "x", "depth": 4}  # what fits stays
    assert "left out: lorebook" in page and "20 KB" in page
    assert companion.greeting.startswith("*Seraphina kneels")  # the character itself is whole


def test_unused_fields_go_before_the_lorebook(client, user, settings):
    settings.LOREBOOK_MAX_ENTRIES = 1  # kept as a card extra, not made a lorebook
    card = v2_card(character_book=LOREBOOK, x_tool={"blob": "z" * (2 * LIMIT)})
    companion, page = import_card(client, user, card)
    stored = companion.config["card"]
    assert stored["character_book"] == LOREBOOK
    assert "unknown" not in stored
    assert "left out: fields we do not use." in page


def test_a_card_within_the_limit_keeps_everything_and_says_nothing(client, user):
    companion, page = import_card(client, user, v2_card(character_book=LOREBOOK, x_tool="kept"))
    stored = companion.config["card"]
    assert (companion.card_book.entries.count(), stored["unknown"]) == (2, {"x_tool": "kept"})
    assert "left out" not in page


def test_the_export_of_a_capped_card_imports_again_whole(client, user):
    companion, _ = import_card(client, user, v2_card(character_book=big_lorebook(3 * LIMIT)))
    exported = client.get(reverse("companions:card_export_json", args=[companion.pk])).content
    Companion.objects.filter(pk=companion.pk).update(name="Old copy")
    again, page = import_card(client, user, json.loads(exported))
    assert "left out" not in page
    assert again.config["card"]["extensions"] == companion.config["card"]["extensions"]


# --- who reads the large columns ----------------------------------------------------------

# A SELECT list naming the whole column ("companions_companion"."config"), not a key read from it
# (PostgreSQL: ``("…"."config" -> 'image_mode')``, SQLite: ``JSON_EXTRACT("…"."config", …)``).
_WHOLE_COLUMN = re.compile(
    r'(?:SELECT|,)\s*"companions_companion"\."(config|header_image_legacy)"\s*(?:,|FROM)'
)


def large_columns_read(queries) -> int:
    """How many times the queries selected a companion's ``config`` or ``header_image_legacy``."""
    return sum(len(_WHOLE_COLUMN.findall(query["sql"])) for query in queries)


def reads_during(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return large_columns_read(captured.captured_queries)


def carded_companion(user, name="Seraphina"):
    return make_companion(user, name=name, config={"card": {"character_book": big_lorebook(LIMIT // 2)}})


@pytest.mark.django_db
def test_the_pattern_sees_a_whole_row_and_not_a_key():
    assert reads_during(lambda: list(Companion.objects.all())) == 2  # config and header_image_legacy
    assert reads_during(lambda: list(Companion.objects.values_list("config__image_mode"))) == 0


STEPS = ("analyze_context", "generate_reply", "reanalyze", "update_state", "generate_image", "finish")


@pytest.mark.django_db
def test_only_the_reply_step_reads_the_card(use_fake_llm, use_fake_sd, user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    companion = carded_companion(user)
    chat = make_chat(companion, greeting="Welcome to the glade.")
    accepted = services.message_send(
        user=user, conversation=chat, text="Tell me about the glade", want_image=True
    )
    run = accepted.run
    reads = {step: reads_during(lambda step=step: getattr(pipeline, step)(run.pk)) for step in STEPS}
    assert reads == {step: int(step == "generate_reply") for step in STEPS}
    run.refresh_from_db()
    assert run.status == "completed"


@pytest.mark.django_db
def test_a_group_turn_reads_only_the_speakers_card(use_fake_llm, user):
    group = make_group(user, "Mika", "Rin", "Aya")
    group.companions.add(carded_companion(user))
    for member in group.companions.all():
        Companion.objects.filter(pk=member.pk).update(config={"card": {"character_book": big_lorebook(1000)}})
    socket_group = consumers._find_conversation(user, {"group_id": group.pk})
    started = []
    assert (
        reads_during(
            lambda: started.append(services.message_send(user=user, conversation=socket_group, text="Hi all"))
        )
        == 0
    )
    run_id = started[0].run.pk
    reads = {step: reads_during(lambda step=step: getattr(pipeline, step)(run_id)) for step in STEPS}
    assert reads == {step: int(step == "generate_reply") for step in STEPS}  # finish starts the next speaker
    assert PipelineRun.objects.filter(conversation=group).count() == 2
    assert Message.objects.filter(conversation=group, role="assistant").count() == 1


@pytest.mark.django_db
def test_sending_reads_the_picture_setting_not_the_card(user):
    companion = carded_companion(user)
    Companion.objects.filter(pk=companion.pk).update(config={**companion.config, "image_mode": "every_reply"})
    chat = make_chat(companion, greeting="Welcome.")
    socket_chat = consumers._find_conversation(user, {"conversation_id": chat.pk})
    accepted = []
    assert (
        reads_during(
            lambda: accepted.append(services.message_send(user=user, conversation=socket_chat, text="Hi"))
        )
        == 0
    )
    assert accepted[0].run.want_image  # the setting was read all the same


@pytest.mark.django_db
def test_a_new_chat_reads_the_card_once_for_its_greetings(user):
    """The alternate greetings live in the card: starting a chat reads it, once; opening it again
    (the companion's socket, its latest chat) does not."""
    companion = carded_companion(user)
    Companion.objects.filter(pk=companion.pk).update(
        config={"card": {**companion.config["card"], "alternate_greetings": ["Back so soon?"]}}
    )
    started = []
    assert (
        reads_during(
            lambda: started.append(consumers._find_conversation(user, {"companion_id": companion.pk}))
        )
        == 1
    )
    greeting = Message.objects.get(conversation=started[0])
    assert (greeting.content, greeting.alternatives) == ("Hey you!", ["Back so soon?"])
    assert reads_during(lambda: consumers._find_conversation(user, {"companion_id": companion.pk})) == 0


PAGES = [
    ("companions:list", False),
    ("companions:detail", True),
    ("chat:page", True),
    ("chat:chats", True),
    ("chat:conversation", "chat"),
    ("groups:list", False),
    ("groups:page", "group"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "argument"), PAGES)
def test_pages_do_not_read_the_card(client, user, name, argument):
    companion = carded_companion(user)
    chat = make_chat(companion, greeting="Welcome.")
    add_exchange(chat, companion, "Hello", "Hello to you")
    group = make_group(user, "Mika", "Rin")
    group.companions.add(companion)
    add_exchange(group, companion, "Hi all", "Hi from the group")
    args = {False: [], True: [companion.pk], "chat": [chat.pk], "group": [group.pk]}[argument]
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse(name, args=args)).status_code == 200
    assert large_columns_read(captured.captured_queries) == 0


@pytest.mark.django_db
def test_the_settings_page_and_the_export_still_have_the_card(client, user):
    companion = carded_companion(user)
    client.force_login(user)
    exported = client.get(reverse("companions:card_export_json", args=[companion.pk])).json()
    assert exported["data"]["character_book"]["entries"]
    response = client.post(
        reverse("companions:settings", args=[companion.pk]),
        {
            **{
                name: value
                for name, value in Companion.objects.filter(pk=companion.pk)
                .values(*cards.HUB_FIELDS, "name", "backstory", "greeting", "system_prompt")
                .get()
                .items()
                if value not in (None, "")
            },
            "config-temperature": "0.5",
            "config-max_reply_tokens": "300",
            "config-image_mode": "on_request",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    companion.refresh_from_db()
    assert companion.config["temperature"] == 0.5
    assert companion.config["card"]["character_book"]["entries"]  # saving settings keeps the card


@pytest.mark.django_db
def test_cards_stored_before_the_cap_are_trimmed_by_the_command(user):
    from io import StringIO

    from django.core.management import call_command

    stored = {
        "character_book": big_lorebook(LIMIT // 2),
        "extensions": {"depth_prompt": "x" * LIMIT},
        "unknown": {"junk": "y" * LIMIT},
    }
    over = make_companion(user, name="Old", config={"card": stored})
    within = make_companion(user, name="New", config={"card": {"character_book": LOREBOOK}})

    out = StringIO()
    call_command("trim_card_extras", "--dry-run", stdout=out)
    assert f"companion {over.pk}: would leave out fields we do not use, extensions" in out.getvalue()
    over.refresh_from_db()
    assert extras_bytes(over.config["card"]) > LIMIT  # a dry run changes nothing

    call_command("trim_card_extras", stdout=StringIO())
    over.refresh_from_db()
    within.refresh_from_db()
    assert extras_bytes(over.config["card"]) <= LIMIT
    assert over.config["card"]["character_book"] == stored["character_book"]  # the lorebook is kept
    assert "extensions" not in over.config["card"] and "unknown" not in over.config["card"]
    assert within.config["card"] == {"character_book": LOREBOOK}
