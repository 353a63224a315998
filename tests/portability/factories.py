"""One account with one or more of everything it can own, for the export and deletion tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from accounts import tokens
from accounts.models import RateLimitRecord
from chat.models import PipelineRun, SamplerPreset
from companions.models import CompanionDraft
from lorebooks.services import lorebook_import
from media.services import store_image
from memories.models import Memory
from portability.models import AccountExport
from tests.accounts.factories import charge
from tests.chat.factories import add_clip, add_exchange, make_chat, make_group_of
from tests.companions.factories import make_companion, png_bytes

# A SillyTavern World Info file (the shape the export writes lorebooks in).
LOREBOOK = {
    "name": "Harbour lore",
    "entries": {
        "1": {
            "uid": 1,
            "key": ["lighthouse"],
            "keysecondary": [],
            "content": "The lighthouse keeper is {{char}}'s aunt.",
            "comment": "Lighthouse",
            "disable": False,
            "position": 0,
            "group": "harbour",
        }
    },
}


@dataclass
class Account:
    """What ``make_account`` made, and how many of each kind an export must hold."""

    user: object
    counts: dict[str, int]
    files: list[str] = field(default_factory=list)  # storage names of the account's files
    token_secret: str = ""


def make_account(user, *, name: str = "Mika", shade: int = 0) -> Account:
    """Two companions (one with a header picture and a lorebook, one with a path-like name), a
    one-to-one chat with a run and a charge, a group chat, a generated picture, an API token,
    a draft, a preset, a rate-limit record, three memories, a reply spoken in two clips and one in one
    clip, and a ready export with its file. ``shade`` changes the pictures' colour and the clips'
    bytes, so two accounts' files differ."""
    mika = make_companion(user, name=name)
    mika.lorebooks.add(lorebook_import(user, json.dumps(LOREBOOK).encode()))
    mika.header_image = store_image(png_bytes(color=(200, 80 + shade, 120)), mika, "header")
    mika.save()
    rin = make_companion(user, name="../../etc/passwd Rin")
    picture = store_image(png_bytes(color=(10, 200 - shade, 30)), mika, "generated")

    chat = make_chat(mika, greeting="Hey you!")
    said, reply = add_exchange(chat, mika, "Hello there", "Hi! <script>alert(1)</script>")
    reply.image = picture
    reply.save(update_fields=["image"])
    PipelineRun.objects.create(
        conversation=chat, turn=said.turn, companion=mika, reply=reply, status="completed"
    )
    charge(mika, 120)
    group = make_group_of(user, [mika, rin], title="Beach crew / ../night")
    _, me = add_exchange(group, rin, "Who is coming?", "Me!")
    clips = [
        add_clip(reply, 0, data=f"RIFF {name} {shade} hi".encode()),
        add_clip(reply, 1, data=f"ID3 {name} {shade} script".encode(), extension="mp3"),
        add_clip(me, 0, data=f"OggS {name} {shade} me".encode(), extension="ogg"),
    ]
    Memory.objects.create(owner=user, companion=mika, text="The user's sister is called Mara", pinned=True)
    Memory.objects.create(
        owner=user,
        companion=mika,
        text="The user likes <b>tea</b>",
        embedding=b"\0\0\x80?",
        embedding_model="m",
    )
    Memory.objects.create(owner=user, companion=rin, text="The user swims", source="manual")

    _, secret = tokens.token_create(user=user, name="laptop")
    CompanionDraft.objects.create(owner=user, data={"name": "Half done"})
    SamplerPreset.objects.create(owner=user, name="Warm", temperature=1.1)
    RateLimitRecord.objects.create(
        scope="settings_change", key=f"user:{user.pk}", hits=3, reset_at=timezone.now() + timedelta(minutes=5)
    )
    zip_name = default_storage.save("exports/old-export.zip", ContentFile(b"PK\x05\x06" + b"\0" * 18))
    AccountExport.objects.create(
        owner=user,
        status="ready",
        file=zip_name,
        byte_size=22,
        progress=100,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return Account(
        user=user,
        counts={
            "companions": 2,
            "lorebooks": 1,
            "conversations": 2,
            "messages": 5,  # greeting, hello, reply; who is coming, me
            "pictures": 2,
            "usage_transactions": 1,
            "api_tokens": 1,
            "sampler_presets": 1,
            "memories": 3,
            "audio": 3,
        },
        files=[mika.header_image.file.name, picture.file.name, *(c.file.name for c in clips), zip_name],
        token_secret=secret,
    )
