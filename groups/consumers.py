"""``/ws/group/<group_id>/``: the chat protocol for a group (docs/websocket.md).

Everything a chat socket shares (auth by session or API token, the socket
cap, frame limits and error frames) comes from ``chat.consumers``; this adds
the group as the target, its snapshot, and its frames: ``message.send``,
``run.cancel``, ``message.regenerate``, ``message.continue``,
``message.alternative`` and ``message.delete`` (``ping`` too).
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from chat import events
from chat.consumers import (
    ProtocolConsumer,
    client_id_field,
    message_id_field,
    message_send_fields,
    require_str,
    run_uuid,
)
from groups import editing, services
from groups.models import GroupChat
from groups.selectors import group_snapshot


def _get_group(user, group_id: int) -> GroupChat | None:
    return GroupChat.objects.filter(pk=group_id, creator=user).first()


class GroupChatConsumer(ProtocolConsumer):
    client_frames = events.GROUP_CLIENT_FRAMES
    group: GroupChat | None = None

    async def load_target(self, user) -> bool:
        group_id = self.scope["url_route"]["kwargs"]["group_id"]
        self.group = await database_sync_to_async(_get_group)(user, group_id)
        return self.group is not None

    def channel_group(self) -> str:
        return events.group_chat_name(self.group.pk)

    def snapshot(self) -> dict[str, Any]:
        return group_snapshot(self.group)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        user = self.scope["user"]
        if kind == "message.send":
            content, client_id, want_image = message_send_fields(frame)
            started = await database_sync_to_async(services.group_message_send)(
                user=user, group=self.group, text=content, want_image=want_image
            )
            await self.send_json(events.message_accepted(client_id, started.message.pk, str(started.run.pk)))
        elif kind == "run.cancel":
            run_id = require_str(frame, "run_id")
            await database_sync_to_async(services.group_turn_cancel)(
                user=user, group=self.group, run_id=run_uuid(run_id)
            )
        elif kind in ("message.regenerate", "message.continue"):
            client_id = client_id_field(frame)
            rewrite = (
                editing.group_reply_regenerate
                if kind == "message.regenerate"
                else editing.group_reply_continue
            )
            started = await database_sync_to_async(rewrite)(
                user=user, group=self.group, message_id=message_id_field(frame, required=False)
            )
            await self.send_json(events.message_accepted(client_id, started.message.pk, str(started.run.pk)))
        elif kind == "message.delete":
            await database_sync_to_async(editing.group_message_delete)(
                user=user, group=self.group, message_id=message_id_field(frame)
            )  # every open tab gets "message.deleted"
        elif kind == "message.alternative":
            await database_sync_to_async(editing.group_reply_show_alternative)(
                user=user, group=self.group, message_id=message_id_field(frame)
            )  # the new text reaches every open tab as a group event
