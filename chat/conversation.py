"""The seam between the pipeline steps and the conversation a run belongs to.

Every step of ``chat.pipeline`` is the same for a one-to-one chat and a group
chat; what differs is only *where*: where the user's words and the history
come from, which row the reply is written to, and which websocket group the
events go to. ``conversation_for(run)`` answers those questions:

* ``DirectConversation``: ``Message`` rows of one companion, events to the
  companion's group;
* ``GroupConversation`` (``run.group`` set): ``GroupMessage`` rows of the
  group, events to the group's channel stamped with the speaker
  (``companion_id``, ``sender``), and when the run ends the next companion of
  the turn is started.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chat import events, prompts
from chat.models import Message, PipelineRun
from chat.publish import EventPublisher
from companionhub import pagecache


class Conversation:
    def __init__(self, run: PipelineRun) -> None:
        self.run = run

    # --- events ---
    def publisher(self) -> EventPublisher:
        raise NotImplementedError

    # --- the user's side ---
    def user_text(self) -> str:
        raise NotImplementedError

    def chat_messages(self, companion, *, user_name: str) -> list[dict[str, str]]:
        """What the LLM is sent: system prompt, history up to the user's message (and the turn)."""
        raise NotImplementedError

    # --- the reply row ---
    @property
    def reply_id(self) -> int | None:
        raise NotImplementedError

    def replies(self):
        """The manager of the reply rows: ``Message`` or ``GroupMessage``."""
        raise NotImplementedError

    def open_reply(self, *, keep_chars: int = 0) -> str:
        """Create the reply row once, or reset it when the step re-runs; return the text kept."""
        raise NotImplementedError

    def _reopen_reply(self, keep_chars: int) -> str:
        """Reset the existing reply row for writing: a re-run step or a reply written again keeps
        nothing, a continued one its first ``keep_chars`` characters; return the text kept."""
        content = self.replies().values_list("content", flat=True).get(pk=self.reply_id)[:keep_chars]
        self.replies().filter(pk=self.reply_id).update(content=content, is_complete=False, finish_reason="")
        return content

    def checkpoint(self, text: str, *, complete: bool | None = None) -> None:
        raise NotImplementedError

    def save_reply(
        self,
        text: str,
        *,
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning: str = "",
    ) -> None:
        """The finished reply; ``reasoning`` is what a reasoning model thought, kept apart."""
        raise NotImplementedError

    def reply_reasoning(self) -> str:
        """The reasoning stored with the reply (the ``done`` event carries it)."""
        return ""

    def reply_content(self) -> str:
        raise NotImplementedError

    def reply_image(self):
        """(reply id, its StoredImage or None), or None when there is no reply row."""
        raise NotImplementedError

    def set_reply_image(self, image) -> None:
        raise NotImplementedError

    def finish_reason(self) -> str:
        return self.replies().filter(pk=self.reply_id).values_list("finish_reason", flat=True).first() or ""

    def clean_reply(self, text: str) -> str:
        """The final text as stored and shown (a group reply loses a leading "Name:" label)."""
        return text

    def may_paint_on_request(self) -> bool:
        """Whether a picture the user asks for in words is painted by this run."""
        return True

    def mark_reply_incomplete(self) -> None:
        raise NotImplementedError

    # --- after the run ---
    def ended(self) -> None:
        """The run completed or failed for good (not cancelled)."""


class DirectConversation(Conversation):
    """One user and one companion: ``Message`` rows."""

    def publisher(self) -> EventPublisher:
        return EventPublisher(self.run.companion_id)

    def user_text(self) -> str:
        return self.run.user_message.content

    def chat_messages(self, companion, *, user_name: str) -> list[dict[str, str]]:
        from chat.selectors import llm_history

        history = prompts.trim_history(
            llm_history(
                companion.pk, upto_message_id=self.run.user_message_id, limit=settings.CHAT_HISTORY_MESSAGES
            ),
            max_chars=settings.CHAT_HISTORY_MAX_CHARS,
        )
        return prompts.build_chat_messages(companion, user_name=user_name, history=history)

    @property
    def reply_id(self) -> int | None:
        return self.run.assistant_message_id

    def replies(self):
        return Message.objects

    def open_reply(self, *, keep_chars: int = 0) -> str:
        run = self.run
        if run.assistant_message_id:
            return self._reopen_reply(keep_chars)
        message = Message.objects.create(
            companion_id=run.companion_id, role=Message.Role.ASSISTANT, content="", is_complete=False
        )
        PipelineRun.objects.filter(pk=run.pk).update(assistant_message=message)
        run.assistant_message_id = message.pk
        pagecache.user_pages_changed(run.companion.owner_id)  # "last message" on the companion list
        return ""

    def checkpoint(self, text: str, *, complete: bool | None = None) -> None:
        fields: dict[str, Any] = {"content": text}
        if complete is not None:
            fields["is_complete"] = complete
        Message.objects.filter(pk=self.reply_id).update(**fields)

    def save_reply(
        self,
        text: str,
        *,
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning: str = "",
    ) -> None:
        Message.objects.filter(pk=self.reply_id).update(
            content=text,
            reasoning=reasoning,
            is_complete=True,
            finish_reason=finish_reason[:20],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def reply_reasoning(self) -> str:
        return Message.objects.filter(pk=self.reply_id).values_list("reasoning", flat=True).first() or ""

    def reply_content(self) -> str:
        if not self.reply_id:
            return ""
        return Message.objects.filter(pk=self.reply_id).values_list("content", flat=True).first() or ""

    def reply_image(self):
        message = Message.objects.select_related("image").filter(pk=self.reply_id).first()
        return None if message is None else (message.pk, message.image)

    def set_reply_image(self, image) -> None:
        Message.objects.filter(pk=self.reply_id).update(image=image)

    def mark_reply_incomplete(self) -> None:
        if self.reply_id:
            Message.objects.filter(pk=self.reply_id).update(is_complete=False)


class GroupConversation(Conversation):
    """The user and several companions: ``GroupMessage`` rows; ``run.companion`` is the speaker."""

    def publisher(self) -> EventPublisher:
        return EventPublisher(
            group=events.group_chat_name(self.run.group_id),
            stamp={"companion_id": self.run.companion_id, "sender": self.run.companion.name},
        )

    def user_text(self) -> str:
        return self.run.group_user_message.content

    def chat_messages(self, companion, *, user_name: str) -> list[dict[str, str]]:
        from groups.selectors import group_llm_history, group_members

        rows = group_llm_history(
            self.run.group_id, exclude_id=self.reply_id, limit=settings.CHAT_HISTORY_MESSAGES
        )
        history = [
            ("assistant" if sender_id == companion.pk else "user", f"{name or user_name}: {content}")
            for sender_id, name, content in rows
        ]
        history = prompts.trim_history(history, max_chars=settings.CHAT_HISTORY_MAX_CHARS)
        others = [c.name for c in group_members(self.run.group) if c.pk != companion.pk]
        return prompts.build_group_chat_messages(
            companion, user_name=user_name, others=others, history=history
        )

    @property
    def reply_id(self) -> int | None:
        return self.run.group_reply_id

    def replies(self):
        from groups.models import GroupMessage

        return GroupMessage.objects

    def open_reply(self, *, keep_chars: int = 0) -> str:
        from groups.models import GroupMessage

        run = self.run
        if run.group_reply_id:
            return self._reopen_reply(keep_chars)
        reply = GroupMessage.objects.create(
            group_id=run.group_id, sender_id=run.companion_id, is_bot=True, content="", is_complete=False
        )
        PipelineRun.objects.filter(pk=run.pk).update(group_reply=reply)
        run.group_reply_id = reply.pk
        return ""

    def checkpoint(self, text: str, *, complete: bool | None = None) -> None:
        from groups.models import GroupMessage

        fields: dict[str, Any] = {"content": text}
        if complete is not None:
            fields["is_complete"] = complete
        GroupMessage.objects.filter(pk=self.reply_id).update(**fields)

    def save_reply(
        self,
        text: str,
        *,
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        reasoning: str = "",
    ) -> None:
        # Tokens stay on the run; a group reply keeps what the page shows and whether it was cut
        # (not the reasoning: group pages do not show it).
        self.replies().filter(pk=self.reply_id).update(
            content=text, is_complete=True, finish_reason=finish_reason[:20]
        )

    def clean_reply(self, text: str) -> str:
        return prompts.strip_speaker_label(text, self.run.companion.name)

    def reply_content(self) -> str:
        from groups.models import GroupMessage

        if not self.reply_id:
            return ""
        return GroupMessage.objects.filter(pk=self.reply_id).values_list("content", flat=True).first() or ""

    def reply_image(self):
        from groups.models import GroupMessage

        reply = GroupMessage.objects.select_related("image").filter(pk=self.reply_id).first()
        return None if reply is None else (reply.pk, reply.image)

    def set_reply_image(self, image) -> None:
        from groups.models import GroupMessage

        GroupMessage.objects.filter(pk=self.reply_id).update(image=image)

    def mark_reply_incomplete(self) -> None:
        from groups.models import GroupMessage

        if self.reply_id:
            GroupMessage.objects.filter(pk=self.reply_id).update(is_complete=False)

    def may_paint_on_request(self) -> bool:
        # "Send us a selfie" gets one picture, from the first speaker, not one per companion.
        return not PipelineRun.objects.filter(
            group_user_message_id=self.run.group_user_message_id, created_at__lt=self.run.created_at
        ).exists()

    def ended(self) -> None:
        from groups.services import group_turn_continue

        group_turn_continue(run_id=self.run.pk)


def companion_released(companion_id: int) -> None:
    """A reply of this companion ended for good: a group reply queued behind it may start now."""
    from groups.services import start_waiting_run

    start_waiting_run(companion_id)


def conversation_for(run: PipelineRun) -> Conversation:
    return GroupConversation(run) if run.group_id else DirectConversation(run)
