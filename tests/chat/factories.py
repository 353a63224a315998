"""Rows for chat tests: conversations (one-to-one and groups), messages with their turns."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from chat.models import Conversation, Message, Participant, SpeechClip, Turn
from chat.speech_files import clip_storage_name
from tests.companions.factories import make_companion


def make_chat(companion, *, title: str = "", greeting: str | None = None) -> Conversation:
    """A one-to-one conversation of ``companion``'s owner with it; ``greeting``: a first message."""
    conversation = Conversation.objects.create(
        owner_id=companion.owner_id, kind=Conversation.Kind.DIRECT, title=title
    )
    Participant.objects.create(conversation=conversation, companion=companion, position=0)
    if greeting is not None:
        add_reply(conversation, companion, greeting)
    return conversation


def chat_of(companion) -> Conversation:
    """The companion's latest one-to-one conversation, made (without a greeting) if it has none."""
    found = (
        Conversation.objects.filter(kind=Conversation.Kind.DIRECT, participants__companion=companion)
        .order_by("-updated_at", "-pk")
        .first()
    )
    return found or make_chat(companion)


def make_group(
    user, *names: str, title: str = "Beach crew", replies_per_turn: int | None = None
) -> Conversation:
    """A group of ``user``'s new companions named ``names`` (two by default)."""
    companions = [make_companion(user, name=name) for name in (names or ("Mika", "Rin"))]
    return make_group_of(user, companions, title=title, replies_per_turn=replies_per_turn)


def make_group_of(
    user, companions, *, title: str = "Beach crew", replies_per_turn: int | None = None
) -> Conversation:
    group = Conversation.objects.create(
        owner=user, kind=Conversation.Kind.GROUP, title=title, replies_per_turn=replies_per_turn
    )
    for position, companion in enumerate(sorted(companions, key=lambda c: c.pk)):
        Participant.objects.create(conversation=group, companion=companion, position=position)
    return group


def add_user_message(conversation: Conversation, content: str, *, order=None, **fields) -> Message:
    """The user's message with its turn (answered by ``order``: the members by default)."""
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content, **fields
    )
    if order is None:
        order = list(conversation.participants.order_by("position").values_list("companion_id", flat=True))
    Turn.objects.create(
        conversation=conversation, message=message, order=list(order), status=Turn.Status.DONE,
        created_at=message.created_at,
    )  # fmt: skip
    return message


def add_reply(conversation: Conversation, companion, content: str, **fields) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, sender=companion, content=content, **fields
    )


def add_exchange(
    conversation: Conversation, companion, said: str, answer: str, **reply_fields
) -> tuple[Message, Message]:
    """A message of the user and the companion's reply to it."""
    return add_user_message(conversation, said), add_reply(conversation, companion, answer, **reply_fields)


def add_clip(
    message: Message, index: int = 0, *, data: bytes = b"RIFF-a-clip", extension: str = "wav"
) -> SpeechClip:
    """A spoken clip of ``message`` with its file in storage, as ``chat.voice`` stores one."""
    name = default_storage.save(clip_storage_name(message.conversation_id, extension), ContentFile(data))
    return SpeechClip.objects.create(
        message=message,
        index=index,
        text=f"sentence {index}",
        file=name,
        content_type=f"audio/{'mpeg' if extension == 'mp3' else extension}",
        duration_ms=500,
        chars=10,
    )
