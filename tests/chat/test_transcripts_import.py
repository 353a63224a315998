"""Imports: a SillyTavern chat or our own JSON becomes a new conversation, or nothing does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from chat import services, transcripts
from chat.models import Conversation, Message, PipelineRun, Turn
from chat.transcripts.reading import MAX_REPORTED
from media.models import StoredImage
from tests.chat.factories import add_reply, add_user_message, make_chat, make_group
from tests.chat.sillytavern import (
    FIXTURE,
    st_file,
    st_header,
    st_reply,
    st_swipes_chat,
    st_user,
)
from tests.companions.factories import make_companion

pytestmark = pytest.mark.django_db

# Fields of ST's lines we do not keep (README, "Chat import and export"): the generation's
# timings, its API and model in ``extra``, and ``swipe_info`` (rebuilt from the message's date).
NOT_KEPT = ("gen_started", "gen_finished", "swipe_info")


@pytest.fixture
def st_user_account(make_user):
    return make_user(username="user", email="user@example.com", display_name="User")


@pytest.fixture
def seraphina(st_user_account):
    return make_companion(st_user_account, name="Seraphina")


def do_import(user, data: bytes, companion=None) -> transcripts.ImportResult:
    return transcripts.conversation_import(user=user, data=data, companion=companion)


def rejected(user, data: bytes, companion) -> list[str]:
    before = (Conversation.objects.count(), Message.objects.count(), Turn.objects.count())
    with pytest.raises(transcripts.TranscriptRejected) as caught:
        do_import(user, data, companion)
    assert (Conversation.objects.count(), Message.objects.count(), Turn.objects.count()) == before
    return caught.value.errors


def comparable(line: dict) -> dict:
    kept = {k: v for k, v in line.items() if k not in NOT_KEPT}
    if "extra" in kept:
        kept["extra"] = {k: v for k, v in kept["extra"].items() if k == "reasoning"}
    return kept


# --- SillyTavern ---------------------------------------------------------------------------


def test_the_checked_in_fixture_is_what_the_builder_writes():
    assert FIXTURE.read_bytes() == st_swipes_chat()


def test_an_st_chat_with_swipes_exports_back_equal(st_user_account, seraphina):
    original = FIXTURE.read_bytes()
    result = do_import(st_user_account, original, seraphina)
    exported = transcripts.export_jsonl(result.conversation)
    before = [json.loads(line) for line in original.decode().split("\n")]
    after = [json.loads(line) for line in exported.decode().split("\n")]
    assert after[0] == before[0]  # the header, chat_metadata and create_date included
    assert [comparable(line) for line in after[1:]] == [comparable(line) for line in before[1:]]


def test_swipes_become_versions_with_the_shown_one_selected(st_user_account, seraphina):
    conversation = do_import(st_user_account, FIXTURE.read_bytes(), seraphina).conversation
    greeting, _, reply, *_ = conversation.messages.order_by("created_at", "pk")
    assert greeting.content == "Welcome to the glade, traveller."
    assert greeting.alternatives == ["You wake by a fire.", "A wolf watches you."]
    assert reply.content == "In the Eldoria forest."
    # Flipping shows the swipe after the shown one first, as swiping right in ST would.
    assert reply.alternatives == ["Somewhere between dreams.", "You are safe here."]
    assert reply.reasoning == "They sound lost; reassure them."


def test_dates_are_kept_and_the_users_lines_become_the_users(st_user_account, seraphina, user):
    companion = make_companion(user, name="Sera")
    conversation = do_import(user, FIXTURE.read_bytes(), companion).conversation
    rows = list(
        conversation.messages.order_by("created_at", "pk").values_list("role", "sender_id", "created_at")
    )
    assert [r[:2] for r in rows[:3]] == [
        ("assistant", companion.pk),
        ("user", None),
        ("assistant", companion.pk),
    ]
    assert rows[0][2] == datetime(2025, 6, 19, 21, 26, tzinfo=UTC)
    assert rows[-1][2] == datetime(2025, 6, 19, 21, 41, tzinfo=UTC)
    header = json.loads(transcripts.export_jsonl(conversation).decode().split("\n")[0])
    assert (header["user_name"], header["character_name"]) == ("Alice", "Sera")


def test_turns_are_as_the_send_path_makes_them(st_user_account, seraphina):
    conversation = do_import(st_user_account, FIXTURE.read_bytes(), seraphina).conversation
    turns = list(Turn.objects.filter(conversation=conversation).order_by("created_at", "pk"))
    users = list(conversation.messages.filter(role="user").order_by("created_at", "pk"))
    assert [t.message_id for t in turns] == [m.pk for m in users]
    assert {(t.status, tuple(t.order)) for t in turns} == {("done", (seraphina.pk,))}
    assert all(t.created_at == t.message.created_at for t in turns)
    assert not PipelineRun.objects.filter(conversation=conversation).exists()


def test_after_an_import_the_page_opens_and_a_new_message_starts_a_run(st_user_account, seraphina, client):
    conversation = do_import(st_user_account, FIXTURE.read_bytes(), seraphina).conversation
    client.force_login(st_user_account)
    page = client.get(reverse("chat:conversation", args=[conversation.pk]))
    assert page.status_code == 200
    assert "Mind the roots." in page.content.decode()
    accepted = services.message_send(user=st_user_account, conversation=conversation, text="Onwards!")
    assert accepted.run.status == PipelineRun.Status.QUEUED
    assert accepted.message.turn.order == [seraphina.pk]
    newest = conversation.messages.order_by("-created_at", "-pk").first()
    assert newest.pk == accepted.message.pk


def test_the_header_is_optional(user, companion):
    result = do_import(user, st_file(st_user("Hi"), st_reply("Hello")), companion)
    assert result.messages == 2
    assert result.conversation.transcript_origin == {"format": "sillytavern"}


def test_system_lines_are_left_out_and_counted(user, companion):
    data = st_file(
        st_header(), st_user("Hi"), st_reply("[The scene fades.]", is_system=True), st_reply("Hello")
    )
    result = do_import(user, data, companion)
    assert list(result.conversation.messages.values_list("content", flat=True)) == ["Hi", "Hello"]
    assert result.notices == ["1 system line was left out (notes hidden from the companion)."]


@pytest.mark.parametrize(
    ("send_date", "expected"),
    [
        ("2025-06-19T21:26:05.500Z", datetime(2025, 6, 19, 21, 26, 5, 500000, tzinfo=UTC)),
        (1_750_368_360_000, datetime(2025, 6, 19, 21, 26, tzinfo=UTC)),
        ("2025-6-19 @21h 26m 05s 123ms", datetime(2025, 6, 19, 21, 26, 5, 123000, tzinfo=UTC)),
    ],
)
def test_every_date_form_st_reads_is_kept(user, companion, send_date, expected):
    conversation = do_import(user, st_file(st_user("Hi", send_date)), companion).conversation
    assert conversation.messages.get().created_at == expected


def test_dates_never_go_backwards_or_into_the_future(user, companion):
    data = st_file(
        st_user("one", "June 19, 2025 9:30pm"),
        st_reply("two", "June 19, 2025 9:00pm"),
        st_user("three", ""),
        st_reply("four", "December 1, 2999 9:00pm"),
    )
    before = datetime.now(tz=UTC)
    rows = list(do_import(user, data, companion).conversation.messages.values_list("content", "created_at"))
    assert [c for c, _ in rows] == ["one", "two", "three", "four"]
    assert rows[0][1] == rows[1][1] == rows[2][1] == datetime(2025, 6, 19, 21, 30, tzinfo=UTC)
    assert before <= rows[3][1] <= datetime.now(tz=UTC)


def test_unstorable_text_is_scrubbed(user, companion):
    data = b'{"name":"U","is_user":true,"mes":"a\\u0000b\\ud800c","send_date":1}'
    message = do_import(user, data, companion).conversation.messages.get()
    assert message.content == "ab?c"


def test_a_mes_that_differs_from_its_swipe_wins(user, companion):
    data = st_file(st_reply("edited", swipes=["first", "second"], swipe_id=1))
    message = do_import(user, data, companion).conversation.messages.get()
    assert (message.content, message.alternatives) == ("edited", ["first"])


# --- refusals: every problem with its line, nothing left behind ------------------------------


def test_a_line_that_is_not_json_is_named(user, companion):
    data = st_file(st_header(), st_user("Hi"), "{not json", st_reply("Hello"))
    assert rejected(user, data, companion) == ["line 3: not JSON"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (st_user(["a list"]), "line 2: 'mes' should be text"),
        ({"name": "U", "is_user": True}, "line 2: 'mes' should be text"),
        (st_user("Hi", is_user="yes"), "line 2: 'is_user' should be true or false"),
        (st_user("Hi", name=7), "line 2: 'name' should be text"),
        (st_user("Hi", "the day after"), "line 2: 'send_date' is not a date"),
        (st_user("Hi", extra=[]), "line 2: 'extra' should be a JSON object"),
        (st_reply("Hi", extra={"reasoning": 1}), "line 2: 'extra.reasoning' should be text"),
        ({**st_reply("Hi"), "swipes": "Hi"}, "line 2: 'swipes' should be a list of texts"),
        (st_reply("Hi", swipes=["Hi", 2]), "line 2: 'swipes' should be a list of texts"),
        (
            st_reply("Hi", swipes=["Hi", "Ho"], swipe_id=2),
            "line 2: 'swipe_id' should be a position in 'swipes'",
        ),
        (
            st_reply("Hi", swipes=["Hi", "Ho"], swipe_id="0"),
            "line 2: 'swipe_id' should be a position in 'swipes'",
        ),
        ([1, 2], "line 2: should be a JSON object"),
    ],
)
def test_a_wrong_type_is_named_with_its_line(user, companion, line, error):
    data = st_file(st_header(), line if isinstance(line, dict) else json.dumps(line))
    errors = rejected(user, data, companion)
    assert len(errors) == 1 and errors[0].startswith(error)


def test_a_bad_header_is_refused(user, companion):
    header = {**st_header(), "user_name": 3, "chat_metadata": []}
    errors = rejected(user, st_file(header, st_user("Hi")), companion)
    assert errors == ["line 1: 'user_name' should be text", "line 1: 'chat_metadata' should be a JSON object"]


def test_every_problem_is_found_and_the_first_ones_listed(user, companion):
    data = st_file(st_header(), *["{bad"] * (MAX_REPORTED + 5))
    with pytest.raises(transcripts.TranscriptRejected) as caught:
        do_import(user, data, companion)
    assert caught.value.total == MAX_REPORTED + 5
    assert len(caught.value.errors) == MAX_REPORTED
    assert caught.value.errors[-1] == f"line {MAX_REPORTED + 1}: not JSON"
    assert "25 problems (the first 20 are listed)" in caught.value.message


def test_too_many_messages_are_refused(user, companion, settings):
    settings.CHAT_IMPORT_MAX_MESSAGES = 3
    data = st_file(st_header(), *[st_user(f"m{n}") for n in range(4)])
    assert rejected(user, data, companion) == ["The file has more than 3 messages."]


def test_a_file_too_large_is_refused(user, companion, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 1024 * 1024
    data = st_file(st_user("x" * (1024 * 1024)))
    assert rejected(user, data, companion) == ["The file is larger than 1 MB."]


def test_a_text_over_the_cap_is_refused_with_its_line(user, companion, settings):
    settings.CHAT_IMPORT_MAX_MESSAGE_CHARS = 10
    data = st_file(st_user("short"), st_reply("far too long for it"), st_reply("ok", swipes=["ok", "y" * 11]))
    assert rejected(user, data, companion) == [
        "line 2: 'mes' is longer than 10 characters",
        "line 3: a version in 'swipes' is longer than 10 characters",
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "The file is empty."),
        (b"  \n\n", "The file is empty."),
        (st_file(st_header()), "The file has no messages to import."),
        (b'{"user_name":"U"}\n{"mes":"\xff"}', "line 2: not UTF-8 text"),
    ],
)
def test_empty_and_undecodable_files_are_refused(user, companion, data, error):
    assert rejected(user, data, companion) == [error]


def test_a_failure_while_writing_leaves_nothing_behind(user, companion, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Turn.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        do_import(user, FIXTURE.read_bytes(), companion)
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


def test_another_users_companion_is_refused(user, other_user):
    theirs = make_companion(other_user)
    with pytest.raises(PermissionError):
        do_import(user, FIXTURE.read_bytes(), theirs)
    assert not Conversation.objects.exists()


def test_an_st_chat_needs_a_companion(user):
    assert rejected(user, FIXTURE.read_bytes(), None) == ["Choose the companion this chat is with."]


# --- our own JSON --------------------------------------------------------------------------


def test_our_json_of_a_one_to_one_chat_imports_back_equal(user, companion):
    chat = make_chat(companion, title="Beach day")
    add_reply(
        chat, companion, "Hey!", alternatives=["Hi!"], created_at=datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    )
    add_user_message(chat, "Swim?", created_at=datetime(2025, 6, 1, 10, 1, tzinfo=UTC))
    image = StoredImage.objects.create(
        companion=companion, kind="generated", file="x.jpg", width=1, height=1, byte_size=1, original_size=1
    )
    add_reply(
        chat,
        companion,
        "Yes!",
        alternatives=["No.", "Maybe."],
        reasoning="Sunny.",
        image=image,
        created_at=datetime(2025, 6, 1, 10, 2, 3, 456000, tzinfo=UTC),
        edited_at=datetime(2025, 6, 2, tzinfo=UTC),
        is_complete=False,
        finish_reason="length",
    )
    reply = chat.messages.get(content="Yes!")
    chat.transcript_origin = {"swipe_ids": {str(reply.pk): 1}}
    chat.save(update_fields=["transcript_origin"])
    exported = json.loads(transcripts.export_json(chat))
    imported = do_import(user, transcripts.export_json(chat), companion).conversation
    again = json.loads(transcripts.export_json(imported))
    assert imported.title == "Beach day"

    def same(message):
        return {k: v for k, v in message.items() if k not in ("id", "state")}

    assert [same(m) for m in again["messages"]] == [same(m) for m in exported["messages"]]


def test_a_picture_of_someone_else_is_not_linked(user, companion, other_user):
    theirs = make_companion(other_user)
    image = StoredImage.objects.create(
        companion=theirs, kind="generated", file="x.jpg", width=1, height=1, byte_size=1, original_size=1
    )
    chat = make_chat(theirs)
    add_reply(chat, theirs, "Look", image=image)
    imported = do_import(user, transcripts.export_json(chat), companion).conversation
    assert imported.messages.get().image_id is None


def test_a_group_export_becomes_a_group_of_companions_with_those_names(user, other_user):
    group = make_group(user, "Mika", "Rin", title="Beach crew", replies_per_turn=1)
    mika, rin = group.companions.order_by("participations__position")
    add_user_message(group, "Hi all", order=[mika.pk, rin.pk])
    add_reply(group, mika, "Hi!")
    add_reply(group, rin, "Yo.")
    make_companion(other_user, name="Mika")  # someone else's Mika is never chosen
    imported = do_import(user, transcripts.export_json(group), None).conversation
    assert imported.is_group and imported.title == "Beach crew" and imported.replies_per_turn == 1
    assert list(imported.participants.values_list("companion_id", flat=True)) == [mika.pk, rin.pk]
    assert list(imported.messages.values_list("sender_id", flat=True)) == [None, mika.pk, rin.pk]
    assert Turn.objects.get(conversation=imported).order == [mika.pk, rin.pk]


def test_a_group_export_is_refused_when_a_name_matches_none_or_several(user):
    group = make_group(user, "Mika", "Rin")
    add_user_message(group, "Hi all")
    make_companion(user, name="Mika")
    document = json.loads(transcripts.export_json(group))
    document["conversation"]["companions"].append({"id": 0, "name": "Aya"})
    errors = rejected(user, json.dumps(document).encode(), None)
    assert errors == [
        "Several companions of yours are named 'Mika': rename all but one, then import again.",
        "No companion of yours is named 'Aya': create or rename one, then import again.",
    ]


def test_a_group_reply_by_someone_not_in_the_group_is_refused(user):
    group = make_group(user, "Mika", "Rin")
    mika = group.companions.get(name="Mika")
    add_reply(group, mika, "Hi!")
    document = json.loads(transcripts.export_json(group))
    document["messages"][0]["sender"]["name"] = "Aya"
    assert rejected(user, json.dumps(document).encode(), None) == [
        "message 1: 'Aya' is not one of the group's companions"
    ]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"format": "companionhub.chat", "version": 2}, "'version' 2 is not one this site reads"),
        ({"format": "other"}, "'format' should be 'companionhub.chat'"),
        ({"messages": {}}, "'messages' should be a list"),
        (
            {"messages": [{"role": "system", "text": "x"}]},
            "message 1: 'role' should be 'user' or 'assistant'",
        ),
        ({"messages": [{"role": "user", "text": 5}]}, "message 1: 'text' should be text"),
        (
            {"messages": [{"role": "assistant", "text": "x"}]},
            "message 1: a reply's 'sender' should have a 'name'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "text": "x",
                        "sender": {"name": "M"},
                        "versions": ["x", "y"],
                        "selected": 5,
                    }
                ]
            },
            "message 1: 'selected' should be a position in 'versions'",
        ),
        (
            {"messages": [{"role": "user", "text": "x", "created_at": "soon"}]},
            "message 1: 'created_at' is not a date",
        ),
        (
            {"messages": [{"role": "user", "text": "x", "is_complete": "no"}]},
            "message 1: 'is_complete' should be true or false",
        ),
    ],
)
def test_our_json_with_wrong_types_is_refused(user, companion, change, error):
    document = {
        "format": "companionhub.chat",
        "version": 1,
        "conversation": {"kind": "direct"},
        "messages": [],
    }
    document.update(change)
    errors = rejected(user, json.dumps(document).encode(), companion)
    assert errors[0].startswith(error)
