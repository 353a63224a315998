"""Conversations come and go: start one (with the greeting), rename, delete, branch; groups'
members; a companion's memory wiped.

Writes like ``chat.services``: ownership checked, rows changed in one
transaction, events after commit. A group's members are only the owner's own
companions, two to six of them, checked here as well as in the form, so a
crafted POST or another caller cannot add someone else's companion.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from accounts.language import user_language
from accounts.models import User
from chat import turns
from chat.admission import change_admit
from chat.models import (
    MAX_GROUP_COMPANIONS,
    MIN_GROUP_COMPANIONS,
    Conversation,
    Message,
    Participant,
    PipelineRun,
    Turn,
)
from chat.paging import MAX_ID
from chat.runs import run_mark_cancelled
from chat.selectors import conversation_members, latest_direct_conversation
from companionhub import pagecache
from companionhub.errors import AppError
from companionhub.text import validate_storable_text
from companions import catalogue
from companions.cards import card_greetings, fill_macros
from companions.models import Companion
from companions.selectors import companions_without_large_columns
from lorebooks.models import Lorebook
from media.models import StoredImage
from memories.services import memories_clear

log = structlog.get_logger(__name__)

BRANCH_BATCH = 500
TITLE_MAX = 100


def _title(title: str, *, required: bool) -> str:
    title = (title or "").strip()
    if (required and not title) or len(title) > TITLE_MAX:
        raise ValidationError(
            _("Give it a title of at most %(count)s characters.") % {"count": TITLE_MAX}, code="title"
        )
    validate_storable_text(title)  # the form refuses a NUL too; other callers meet the same rule
    return title


def _greeting(companion: Companion, user: User) -> Message | None:
    """The companion's greeting as a first message (unsaved), its alternates as versions."""
    full = Companion.objects.only("greeting", "config", "name").get(pk=companion.pk)
    names = {"char": companion.name, "user": user.name_for_companions}
    greetings = [fill_macros(text, **names) for text in card_greetings(full)]
    if not greetings:
        return None
    return Message(
        role=Message.Role.ASSISTANT, sender=companion, content=greetings[0], alternatives=greetings[1:]
    )


def conversation_start(*, user: User, companion: Companion, title: str = "") -> Conversation:
    """A new one-to-one chat with ``companion``, its greeting stored as the first message."""
    if companion.owner_id != user.pk:
        raise PermissionError("not the owner")
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user, kind=Conversation.Kind.DIRECT, title=_title(title, required=False)
        )
        Participant.objects.create(conversation=conversation, companion=companion, position=0)
        greeting = _greeting(companion, user)
        if greeting is not None:
            greeting.conversation = conversation
            greeting.save()
        pagecache.user_pages_changed(user.pk)
    log.info("conversation_started", conversation_id=conversation.pk, companion_id=companion.pk)
    return conversation


def conversation_for_companion(*, user: User, companion: Companion) -> Conversation:
    """The companion's most recently active one-to-one chat, started now if it has none."""
    conversation = latest_direct_conversation(companion)
    if conversation is not None:
        return conversation
    with transaction.atomic():
        # Two tabs opening a new companion at once make one chat, not two.
        Companion.objects.select_for_update().filter(pk=companion.pk).values_list("pk", flat=True).first()
        conversation = latest_direct_conversation(companion)
        if conversation is None:
            conversation = conversation_start(user=user, companion=companion)
    return conversation


def conversation_rename(*, user: User, conversation: Conversation, title: str) -> Conversation:
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")
    title = _title(title, required=conversation.is_group)
    Conversation.objects.filter(pk=conversation.pk).update(title=title)
    conversation.title = title
    pagecache.user_pages_changed(user.pk)
    return conversation


@transaction.atomic
def conversation_set_lorebooks(*, conversation: Conversation, lorebooks: Iterable[Lorebook]) -> None:
    """The lorebooks that apply to every speaker of this chat; only the owner's own may be attached."""
    books = list(lorebooks)
    if any(book.owner_id != conversation.owner_id for book in books):
        raise AppError("not_yours", _("Only your own lorebooks can be attached."))
    conversation.lorebooks.set(books)
    ids = sorted(b.pk for b in books)
    log.info("conversation_lorebooks_set", conversation_id=conversation.pk, lorebooks=ids)


def conversation_delete(*, user: User, conversation: Conversation) -> None:
    """Delete the conversation and its messages (the companions and their other chats stay).

    Refused while a reply is being written: deleting live runs would lose
    their usage charge. Stop the reply first.
    """
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")
    conversation = turns.lock_conversation(conversation.pk)
    if turns.turn_in_progress(conversation.pk):
        raise AppError("busy", _("A reply is still being written. Stop it, then delete the chat."))
    conversation_id = conversation.pk
    conversation.delete()
    pagecache.user_pages_changed(user.pk)
    log.info("conversation_deleted", conversation_id=conversation_id)


def conversation_branch(*, user: User, conversation: Conversation, message_id: Any) -> Conversation:
    """A new conversation holding this one's history up to and including ``message_id``.

    Every message is copied with its versions, picture and reasoning; the
    user's messages keep their turns. The original is untouched; the branch
    links back to the message it came from and is titled after the original.
    """
    if conversation.owner_id != user.pk:
        raise PermissionError("not the owner")
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not 1 <= message_id <= MAX_ID:
        raise AppError("not_found", _("No such message."))
    change_admit(user)
    with transaction.atomic():
        conversation = turns.lock_conversation(conversation.pk)
        target = Message.objects.filter(pk=message_id, conversation=conversation).first()
        if target is None:
            raise AppError("not_found", _("No such message."))
        if not target.is_complete and turns.turn_in_progress(conversation.pk):
            raise AppError("busy", _("That reply is still being written. Branch once it is done."))
        branch = Conversation.objects.create(
            owner=user,
            kind=conversation.kind,
            title=branch_title(conversation),
            replies_per_turn=conversation.replies_per_turn,
            branched_from=target,
        )
        Participant.objects.bulk_create(
            [
                Participant(conversation=branch, companion_id=p.companion_id, position=p.position)
                for p in conversation.participants.all()
            ]
        )
        _copy_history(conversation, branch, upto=target)
        pagecache.user_pages_changed(user.pk)
    log.info(
        "conversation_branched", conversation_id=conversation.pk, branch_id=branch.pk, message_id=target.pk
    )
    return branch


def branch_title(conversation: Conversation) -> str:
    members = conversation_members(conversation)  # the locked row has no prefetched members
    base = conversation.title or (members[0].name if members else "Chat")
    suffix = " (branch)"
    return base[: TITLE_MAX - len(suffix)] + suffix


def _copy_history(source: Conversation, branch: Conversation, *, upto: Message) -> None:
    earlier = Q(created_at__lt=upto.created_at) | Q(created_at=upto.created_at, pk__lte=upto.pk)
    messages = list(Message.objects.filter(earlier, conversation=source).order_by("created_at", "pk"))
    turns_of = dict(
        Turn.objects.filter(message__in=[m.pk for m in messages]).values_list("message_id", "order")
    )
    copied: list[tuple[Message, Message]] = []
    for start in range(0, len(messages), BRANCH_BATCH):
        batch = messages[start : start + BRANCH_BATCH]
        made = Message.objects.bulk_create(
            [
                Message(
                    conversation=branch,
                    role=m.role,
                    sender_id=m.sender_id,
                    content=m.content,
                    reasoning=m.reasoning,
                    image_id=m.image_id,
                    prompt_tokens=m.prompt_tokens,
                    completion_tokens=m.completion_tokens,
                    is_complete=m.is_complete,
                    finish_reason=m.finish_reason,
                    alternatives=list(m.alternatives),
                    created_at=m.created_at,
                    edited_at=m.edited_at,
                )
                for m in batch
            ]
        )
        copied += list(zip(batch, made, strict=True))
    Turn.objects.bulk_create(
        [
            Turn(
                conversation=branch,
                message=new,
                order=turns_of[old.pk],
                status=Turn.Status.DONE,
                created_at=old.created_at,
            )
            for old, new in copied
            if old.pk in turns_of
        ]
    )


# --- groups ------------------------------------------------------------------------------


def _members(user: User, companions: Iterable[Companion | int]) -> list[Companion]:
    ids = {c.pk if isinstance(c, Companion) else int(c) for c in companions}
    members = list(companions_without_large_columns().filter(owner=user, pk__in=ids).order_by("pk"))
    if len(members) != len(ids):
        # Someone else's companion, or one that does not exist: the same answer.
        raise ValidationError(_("Choose only your own companions."), code="not_yours")
    if not MIN_GROUP_COMPANIONS <= len(members) <= MAX_GROUP_COMPANIONS:
        raise ValidationError(
            _("A group has %(min)s to %(max)s companions.")
            % {"min": MIN_GROUP_COMPANIONS, "max": MAX_GROUP_COMPANIONS},
            code="member_count",
        )
    return members


def _replies(replies_per_turn: int | None, members: list[Companion]) -> int | None:
    if replies_per_turn is None:
        return None
    if not 1 <= replies_per_turn <= len(members):
        raise ValidationError(
            _("Replies per turn must be between 1 and %(count)s (the number of companions).")
            % {"count": len(members)},
            code="replies_per_turn",
        )
    return replies_per_turn


def _set_members(conversation: Conversation, members: list[Companion]) -> None:
    Participant.objects.filter(conversation=conversation).exclude(companion__in=members).delete()
    kept = set(Participant.objects.filter(conversation=conversation).values_list("companion_id", flat=True))
    Participant.objects.bulk_create(
        [Participant(conversation=conversation, companion=c) for c in members if c.pk not in kept]
    )
    # The standing order is by companion id, as groups always had it.
    for position, companion in enumerate(members):
        Participant.objects.filter(conversation=conversation, companion=companion).update(position=position)


def group_create(
    *, user: User, title: str, companions: Iterable[Companion | int], replies_per_turn: int | None = None
) -> Conversation:
    members = _members(user, companions)
    with transaction.atomic():
        group = Conversation.objects.create(
            owner=user,
            kind=Conversation.Kind.GROUP,
            title=_title(title, required=True),
            replies_per_turn=_replies(replies_per_turn, members),
        )
        _set_members(group, members)
        pagecache.user_pages_changed(user.pk)
    log.info("group_created", conversation_id=group.pk, companions=[c.pk for c in members])
    return group


def group_update(
    *,
    user: User,
    group: Conversation,
    title: str,
    companions: Iterable[Companion | int],
    replies_per_turn: int | None,
) -> Conversation:
    if group.owner_id != user.pk or not group.is_group:
        raise PermissionError("not the owner's group")
    members = _members(user, companions)
    with transaction.atomic():
        group.title = _title(title, required=True)
        group.replies_per_turn = _replies(replies_per_turn, members)
        group.save(update_fields=["title", "replies_per_turn"])
        _set_members(group, members)
        pagecache.user_pages_changed(user.pk)
    log.info("group_updated", conversation_id=group.pk, companions=[c.pk for c in members])
    return group


# --- a companion's memory -----------------------------------------------------------------


@transaction.atomic
def companion_wipe_memory(*, companion: Companion, clear_memories: bool = False) -> dict[str, int]:
    """Forget the companion's one-to-one chats (messages, runs) and its generated pictures;
    its scene back to the start. The companion, its settings and header stay; so do its
    group chats. Its long-term memories stay too unless ``clear_memories``: they are the
    user's to keep (and edit on the Memories page) even when the chats go.
    Refused while a reply of it is being written anywhere.
    """
    if turns.companion_is_busy(companion.pk):
        raise AppError(
            "busy",
            _("%(name)s is still replying. Wait a moment or cancel the reply.") % {"name": companion.name},
        )
    direct = Conversation.objects.filter(kind=Conversation.Kind.DIRECT, participants__companion=companion)
    messages = Message.objects.filter(conversation__in=direct).count()
    runs = PipelineRun.objects.filter(conversation__in=direct).count()
    direct.delete()
    images, _rows = StoredImage.objects.filter(companion=companion, kind=StoredImage.Kind.GENERATED).delete()
    scene = catalogue.starting_scene(user_language(companion.owner))
    Companion.objects.filter(pk=companion.pk).update(**scene)
    for field, value in scene.items():
        setattr(companion, field, value)
    forgotten = memories_clear(owner=companion.owner, companion=companion) if clear_memories else 0
    pagecache.user_pages_changed(companion.owner_id)
    log.info(
        "companion_memory_wiped", companion_id=companion.pk, messages=messages, runs=runs, memories=forgotten
    )
    return {"messages": messages, "runs": runs, "images": images, "memories": forgotten}


def companion_deleting(sender: type[Companion], instance: Companion, **kwargs: Any) -> None:
    """Before a companion row goes (the site, the admin, its account deleted): its one-to-one
    chats go with it, and its replies being written are cancelled first.

    Its replies and memberships cascade by foreign key; a one-to-one chat would
    otherwise stay behind holding only the user's side. Groups lose a member.
    A worker still streaming one of its replies stops at its next poll of the
    cancel flag; a step that then finds its run gone stops quietly (``chat.tasks``).
    """
    live = PipelineRun.objects.filter(companion=instance, status__in=PipelineRun.LIVE)
    for run_id in live.values_list("pk", flat=True):
        run_mark_cancelled(run_id)
    Conversation.objects.filter(kind=Conversation.Kind.DIRECT, participants__companion=instance).delete()
