"""What the pipeline steps need to know about the conversation a run writes into.

Every step is the same for a one-to-one chat and a group: where the user's
words and the history come from, which row the reply is written to and
which websocket group the events go to are all read from the run's
conversation, turn and reply. The only differences are data: a group's
prompt names the others and labels each line, and its speaker's leading
"Name:" is taken off the reply.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from chat import prompt_assembly, prompts, turns
from chat.models import Conversation, Message, PipelineRun
from chat.prompt_assembly import AssembledPrompt
from chat.publish import EventPublisher
from chat.tokens import Counter
from companionhub import pagecache
from companions.models import Companion
from media.models import StoredImage


class ReplyWriter:
    def __init__(self, run: PipelineRun) -> None:
        self.run = run

    # --- events ---
    def publisher(self) -> EventPublisher:
        """Events to the conversation, each stamped with the speaker."""
        stamp = {"companion_id": self.run.companion_id, "sender": self.run.companion.name}
        return EventPublisher(self.run.conversation_id, stamp=stamp)

    # --- the user's side ---
    def user_text(self) -> str:
        return self.run.turn.message.content

    def prompt(
        self,
        companion: Companion,
        *,
        user_name: str,
        counter: Counter,
        context_length: int,
        reserve: int,
        continuing: str | None = None,
    ) -> AssembledPrompt:
        """What the LLM is sent: the system prompt, then the conversation so far (the greeting,
        the user's message, the replies of this turn before this one), without the reply being
        written, within the token budget (``chat.prompt_assembly``). ``continuing``: a
        continued reply's start, sent after the history."""
        return prompt_assembly.prompt_for_run(
            self.run,
            companion,
            user_name=user_name,
            counter=counter,
            context_length=context_length,
            reserve=reserve,
            continuing=continuing,
        )

    def record_prompt(self, record: dict[str, Any]) -> None:
        """Keep what was sent for the owner's prompt view, and forget the records of the
        conversation's older runs past the newest ``CHAT_PROMPT_RECORDS_KEPT`` (one update)."""
        run = self.run
        PipelineRun.objects.filter(pk=run.pk).update(prompt_record=record)
        kept = int(settings.CHAT_PROMPT_RECORDS_KEPT)
        with_records = PipelineRun.objects.filter(conversation_id=run.conversation_id).exclude(
            prompt_record={}
        )
        cutoff = with_records.order_by("-created_at").values_list("created_at", flat=True)[kept : kept + 1]
        oldest_kept = next(iter(cutoff), None)
        if oldest_kept is not None:
            with_records.filter(created_at__lte=oldest_kept).exclude(pk=run.pk).update(prompt_record={})

    # --- the reply row ---
    @property
    def reply_id(self) -> int | None:
        return self.run.reply_id

    def _reply(self) -> QuerySet[Message]:
        if self.reply_id is None:
            return Message.objects.none()
        return Message.objects.filter(pk=self.reply_id)

    def open_reply(self, *, keep_chars: int = 0) -> str:
        """Create the reply row once, or reset it when the step re-runs; return the text kept
        (a continued reply keeps its first ``keep_chars`` characters, anything else nothing)."""
        run = self.run
        if run.reply_id:
            content = self._reply().values_list("content", flat=True).get()[:keep_chars]
            self._reply().update(content=content, is_complete=False, finish_reason="")
            return content
        message = Message.objects.create(
            conversation_id=run.conversation_id,
            role=Message.Role.ASSISTANT,
            sender_id=run.companion_id,
            content="",
            is_complete=False,
        )
        PipelineRun.objects.filter(pk=run.pk).update(reply=message)
        run.reply_id = message.pk
        Conversation.objects.filter(pk=run.conversation_id).update(updated_at=timezone.now())
        pagecache.user_pages_changed(run.conversation.owner_id)  # "last message" in the lists
        return ""

    def earlier_versions(self) -> list[str]:
        """The texts the reply had before it is written again (none for a new reply), so a
        back end without randomness of its own can write a different one."""
        if not self.reply_id:
            return []
        return list(self._reply().values_list("alternatives", flat=True).get() or [])

    def checkpoint(self, text: str, *, complete: bool | None = None) -> None:
        fields: dict[str, Any] = {"content": text}
        if complete is not None:
            fields["is_complete"] = complete
        self._reply().update(**fields)

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
        self._reply().update(
            content=text,
            reasoning=reasoning,
            is_complete=True,
            finish_reason=finish_reason[:20],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def finished_reply(self) -> tuple[int, str, str]:
        """(length, reasoning, finish reason) of the saved reply, in one query: what ``done`` says."""
        found = self._reply().values_list("content", "reasoning", "finish_reason").first()
        content, reasoning, finish_reason = found or ("", "", "")
        return len(content), reasoning or "", finish_reason or ""

    def reply_content(self) -> str:
        if not self.reply_id:
            return ""
        return self._reply().values_list("content", flat=True).first() or ""

    def reply_image(self) -> tuple[int, StoredImage | None] | None:
        """(reply id, its StoredImage or None), or None when there is no reply row."""
        message = self._reply().select_related("image").first() if self.reply_id else None
        return None if message is None else (message.pk, message.image)

    def set_reply_image(self, image: StoredImage) -> None:
        self._reply().update(image=image)

    def clean_reply(self, text: str) -> str:
        """The final text as stored and shown (a group reply loses a leading "Name:" label)."""
        if self.run.conversation.is_group:
            return prompts.strip_speaker_label(text, self.run.companion.name)
        return text

    def may_paint_on_request(self) -> bool:
        """Whether a picture the user asks for in words is painted by this run: "send us a
        selfie" gets one picture, from the turn's first speaker, not one per companion."""
        return (
            not PipelineRun.objects.filter(turn_id=self.run.turn_id, created_at__lt=self.run.created_at)
            .exclude(companion_id=self.run.companion_id)
            .exists()
        )

    def mark_reply_incomplete(self) -> None:
        if self.reply_id:
            self._reply().update(is_complete=False)

    # --- after the run ---
    def ended(self) -> None:
        """The run completed or failed for good (not cancelled): the turn goes on with the next
        companion, and a reply that waited for this companion may start."""
        turns.turn_continue(run_id=self.run.pk)
        turns.start_waiting_run(self.run.companion_id)
