"""A picture in a group reply (groups gained the picture frames with the one core).

``picture.use_as_header`` makes it the header of the companion that painted
it, not of the group's first member; ``picture.delete`` takes it off the
reply for every open tab. Both on the group's own socket, on rows made by hand.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage

from chat.models import Message
from chat.selectors import conversation_members
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_reply, add_user_message, make_group
from tests.chat.frames import unnumbered
from tests.companions.factories import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def group_with_a_picture(user):
    """Mika and Rin; Rin's reply shows a picture she painted."""
    group = make_group(user, "Mika", "Rin")
    mika, rin = conversation_members(group)
    add_user_message(group, "Pictures, anyone?")
    add_reply(group, mika, "Not me.")
    picture = store_image(png_bytes(), rin, StoredImage.Kind.GENERATED, prompt="Rin at the beach")
    reply = add_reply(group, rin, "Here!", image=picture)
    return group, mika, rin, reply


@sync_to_async
def header_of(companion) -> StoredImage | None:
    return Companion.objects.select_related("header_image").get(pk=companion.pk).header_image


async def test_use_as_header_gives_the_picture_to_the_companion_that_painted_it(connect_group, user):
    group, mika, rin, reply = await group_with_a_picture(user)
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    await tab.send({"type": "picture.use_as_header", "message_id": reply.pk})
    heard = [unnumbered(await client.receive_until("companion.header")) for client in (tab, other)]
    header = await header_of(rin)
    # The event names whose header it is: a group page updates that companion's avatar.
    assert heard == [{"type": "companion.header", "url": header.url, "companion_id": rin.pk}] * 2
    assert header.kind == StoredImage.Kind.HEADER and header.pk != reply.image_id  # a copy
    assert default_storage.exists(header.file.name)
    assert await header_of(mika) is None  # not the first member's
    assert await sync_to_async(lambda: Message.objects.get(pk=reply.pk).image_id)() == reply.image_id


async def test_delete_takes_the_picture_off_the_reply_for_every_tab(connect_group, user):
    group, _, rin, reply = await group_with_a_picture(user)
    picture = await sync_to_async(lambda: StoredImage.objects.get(pk=reply.image_id))()
    tab, other = await connect_group(group.pk, user=user), await connect_group(group.pk, user=user)
    await tab.send({"type": "picture.delete", "message_id": reply.pk})
    for client in (tab, other):
        assert unnumbered(await client.receive_until("picture.removed")) == {
            "type": "picture.removed",
            "message_id": reply.pk,
        }
    message = await sync_to_async(Message.objects.get)(pk=reply.pk)
    assert (message.content, message.image_id, message.sender_id) == ("Here!", None, rin.pk)  # the words stay
    assert not await StoredImage.objects.filter(pk=picture.pk).aexists()
    assert not default_storage.exists(picture.file.name)


@pytest.mark.parametrize("frame", ["picture.use_as_header", "picture.delete"])
async def test_a_message_without_a_picture_or_of_another_group_is_refused(connect_group, user, frame):
    group, mika, _, reply = await group_with_a_picture(user)
    *_, theirs = await group_with_a_picture(user)
    no_picture = await sync_to_async(lambda: Message.objects.get(conversation=group, sender=mika).pk)()
    client = await connect_group(group.pk, user=user)
    for message_id, code in ((no_picture, "not_a_picture"), (theirs.pk, "not_found")):
        await client.send({"type": frame, "message_id": message_id})
        assert (await client.receive_until("error"))["code"] == code
    assert await header_of(mika) is None
    assert await StoredImage.objects.filter(pk=theirs.image_id).aexists()
    assert await sync_to_async(lambda: Message.objects.get(pk=reply.pk).image_id)() == reply.image_id
