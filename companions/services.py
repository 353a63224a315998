"""Writes to companions: the wizard, card import, settings and delete (wiping a memory is
``chat.conversations.companion_wipe_memory``: the chats are chat's)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _

from accounts.language import user_language
from accounts.models import User
from companionhub import pagecache, ratelimits
from companionhub.errors import AppError
from companions import cards, catalogue
from companions.config import effective_config
from companions.forms import DATA_STEPS, CompanionSettingsForm
from companions.models import Companion, CompanionDraft, new_image_seed
from companions.scene import card_starting_scene
from lorebooks import services as lorebook_services
from lorebooks.models import Lorebook
from media.imaging import ImageRejected
from media.models import StoredImage
from media.services import store_image

log = structlog.get_logger(__name__)


class DraftAlreadyUsed(Exception):
    """Finish was submitted for a draft that already became a companion."""


def draft_get_or_create(*, user: User) -> CompanionDraft:
    draft, _created = CompanionDraft.objects.get_or_create(owner=user)
    return draft


def draft_save_step(*, draft: CompanionDraft, data: dict[str, Any], reached_step: int) -> None:
    """Merge one step's values into the draft; remember the furthest step reached."""
    draft.data = {**draft.data, **data}
    draft.step = max(draft.step, reached_step)
    draft.save(update_fields=["data", "step", "updated_at"])


def draft_discard(*, user: User) -> None:
    CompanionDraft.objects.filter(owner=user).delete()


def draft_first_invalid_step(draft: CompanionDraft) -> int | None:
    """1-based number of the first data step whose stored values do not validate."""
    for number, form_class in enumerate(DATA_STEPS, start=1):
        # initial: the draft's other answers (the body step asks what suits the chosen gender)
        if not form_class(data=_as_form_data(draft.data, form_class), initial=draft.data).is_valid():
            return number
    return None


def _as_form_data(values: dict[str, Any], form_class: type[forms.ModelForm]) -> MultiValueDict[str, str]:
    data: MultiValueDict[str, str] = MultiValueDict()
    for name in form_class._meta.fields or ():
        value = values.get(name)
        if isinstance(value, list):
            data.setlist(name, [str(v) for v in value])
        elif value is not None:
            data[name] = str(value)
    return data


def _start_scene(companion: Companion, owner: User) -> None:
    for field, value in catalogue.starting_scene(user_language(owner)).items():
        setattr(companion, field, value)


def companion_create_from_draft(*, user: User, header: UploadedFile | None) -> Companion:
    """Turn the user's draft into exactly one companion.

    The draft row is locked and deleted in the same transaction that creates
    the companion, so a double click, a reload or a second tab cannot create
    a second one: the loser finds no draft and gets ``DraftAlreadyUsed``.
    Raises ``media.imaging.ImageRejected`` (nothing created) for a bad picture.
    """
    with transaction.atomic():
        draft = CompanionDraft.objects.select_for_update().filter(owner=user).first()
        if draft is None:
            raise DraftAlreadyUsed
        form = CompanionSettingsForm(data=_as_form_data(draft.data, CompanionSettingsForm))
        if not form.is_valid():
            raise ValueError(f"draft does not validate: {form.errors.as_json()}")
        companion = form.save(commit=False)
        companion.owner = user
        companion.config = effective_config(None)
        _start_scene(companion, user)
        companion.save()
        if header is not None:
            companion.header_image = store_image(header.read(), companion, StoredImage.Kind.HEADER)
            companion.save(update_fields=["header_image"])
        draft.delete()
        pagecache.user_pages_changed(user.pk)
    log.info("companion_created", companion_id=companion.pk, user_id=user.pk)
    return companion


CARD_COLUMNS = ("name", "backstory", "greeting", "system_prompt", "distinguishing_features", "visual_prompt")


def _max_length(column: str) -> int:
    field = Companion._meta.get_field(column)
    if not isinstance(field, models.Field) or field.max_length is None:
        raise TypeError(f"Companion.{column} takes card text, so it needs a max_length")
    return field.max_length


def companion_import_card(*, user: User, upload: UploadedFile) -> tuple[Companion, cards.ImportedCard]:
    """Make a new companion of ``user`` from a character card file (PNG, JSON or CHARX).

    The file is refused before it is read when it is over the image byte
    limit (``IMAGE_MAX_BYTES``; a card PNG is an image upload). The values go
    through the same form as the wizard's, and a PNG's picture through
    ``media`` like any header picture, all in one transaction: a bad picture
    (bomb, damaged) leaves nothing behind. Raises ``cards.CardRejected`` or
    ``media.imaging.ImageRejected`` with a message for the user. The card's lorebook
    becomes a lorebook of ``user``, attached to the companion, in the same transaction.
    """
    limit = settings.IMAGE_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise cards.CardRejected("too_large", cards.too_large_message(limit))
    parsed = cards.parse_card_file(upload.read(limit + 1), max_bytes=limit)
    imported = cards.to_companion(
        parsed,
        max_lengths={name: _max_length(name) for name in CARD_COLUMNS},
        extras_max_bytes=settings.CARD_EXTRAS_MAX_BYTES,
        book_limits=lorebook_services.import_limits(),
    )
    form = CompanionSettingsForm(data=_as_form_data(imported.values, CompanionSettingsForm))
    if not form.is_valid():  # the limits above make this rare: say which field, never crash
        field, errors = next(iter(form.errors.items()))
        if field in form.fields:
            message = _('The card\'s "%(field)s" is not usable: %(error)s') % {
                "field": form.fields[field].label,
                "error": errors[0],
            }
        else:
            message = _("The card is not usable: %(error)s") % {"error": errors[0]}
        raise cards.CardRejected("invalid", message)
    with transaction.atomic():
        companion = form.save(commit=False)
        companion.owner = user
        companion.config = effective_config({"card": imported.card_config})
        _start_scene(companion, user)
        if imported.book is not None:
            companion.card_book = lorebook_services.lorebook_save_parsed(owner=user, book=imported.book)
        companion.save()
        if companion.card_book is not None:
            companion.lorebooks.add(companion.card_book)
        if parsed.image is not None:
            companion_set_header(companion=companion, data=parsed.image)
        pagecache.user_pages_changed(user.pk)
    _start_card_scene(companion)
    log.info(
        "companion_imported",
        companion_id=companion.pk,
        user_id=user.pk,
        spec=parsed.spec,
        left_out=imported.left_out,
        picture=parsed.image is not None,
    )
    return companion, imported


def _start_card_scene(companion: Companion) -> None:
    """The card's own starting scene (read from its scenario and first message after the
    companion is saved: the call may take seconds, no transaction waits for it); the default
    scene stays when none is found."""
    scene = card_starting_scene(companion)
    if scene is None:
        return
    values = {f"current_{name}": scene[name][:200] for name in ("outfit", "location", "action")}
    Companion.objects.filter(pk=companion.pk).update(**values)
    for field, value in values.items():
        setattr(companion, field, value)
    pagecache.user_pages_changed(companion.owner_id)


@dataclass(frozen=True)
class CardImportOutcome:
    """One file of a bulk import: the companion made of it, or why it was refused."""

    filename: str
    companion: Companion | None = None
    imported: cards.ImportedCard | None = None
    error: str = ""
    is_lorebook: bool = False  # a lorebook file: the page offers to import it as one


def companion_import_cards(*, user: User, uploads: list[UploadedFile]) -> list[CardImportOutcome]:
    """Import each file as its own companion, each in its own transaction.

    A refused file (not a card, a bad picture, a hostile zip) leaves nothing
    behind and does not stop the others; every file gets an outcome. The
    caller counted the first file against the ``companion_create`` limit; each
    further one is counted here, and once the limit is reached the rest are
    refused rather than imported.
    """
    outcomes = []
    key = f"user:{user.pk}"
    for index, upload in enumerate(uploads):
        name = (upload.name or "card")[:200]
        if index and ratelimits.hit("companion_create", key, record_label=user.username).limited:
            error = _(
                "Not imported: you have made many companions in a short time. Try this file again later."
            )
            outcomes.append(CardImportOutcome(filename=name, error=error))
            continue
        try:
            companion, imported = companion_import_card(user=user, upload=upload)
        except (cards.CardRejected, ImageRejected) as exc:
            is_lorebook = getattr(exc, "code", "") == "is_lorebook"
            outcomes.append(CardImportOutcome(filename=name, error=exc.message, is_lorebook=is_lorebook))
        else:
            outcomes.append(CardImportOutcome(filename=name, companion=companion, imported=imported))
    return outcomes


def with_card_texts(config: dict[str, Any], texts: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the editor's card texts in its ``card`` block (what the card carried beside
    them stays). A companion made here gets a block once it has some card text."""
    card = cards.stored_card_of(config)
    if not card and not any(texts.values()):
        return config
    return {**config, "card": {**card, **texts}}


def companion_update(
    *,
    companion: Companion,
    form: CompanionSettingsForm,
    config: dict[str, Any],
    header: UploadedFile | None,
    card_texts: dict[str, Any] | None = None,
) -> Companion:
    """Save settings (and the card's texts the editor shows); a new picture replaces (and deletes)
    the old one."""
    with transaction.atomic():
        companion = form.save(commit=False)
        companion.config = {**companion.config, **config}
        if card_texts is not None:
            companion.config = with_card_texts(companion.config, card_texts)
        companion.version = F("version") + 1
        companion.save()
        if header is not None:
            companion_set_header(companion=companion, data=header.read())
        pagecache.user_pages_changed(companion.owner_id)
    companion.refresh_from_db()
    log.info("companion_updated", companion_id=companion.pk, fields=sorted(form.changed_data))
    return companion


def companion_set_lorebooks(*, companion: Companion, lorebooks: Iterable[Lorebook]) -> None:
    """The lorebooks that apply to the companion's replies; only the owner's own may be attached."""
    books = list(lorebooks)
    if any(book.owner_id != companion.owner_id for book in books):
        raise AppError("not_yours", _("Only your own lorebooks can be attached."))
    companion.lorebooks.set(books)
    log.info("companion_lorebooks_set", companion_id=companion.pk, lorebooks=sorted(b.pk for b in books))


def companion_start_card_book(*, companion: Companion) -> Lorebook:
    """Give a companion that has none a lorebook of its own (exported in its card as
    ``character_book``), attached to its replies. A companion that has one keeps it."""
    with transaction.atomic():
        locked = Companion.objects.select_for_update().get(pk=companion.pk)
        if locked.card_book is not None:
            return locked.card_book
        book = lorebook_services.lorebook_create(owner=locked.owner, name=locked.name)
        locked.card_book = book
        locked.save(update_fields=["card_book", "updated_at"])
        locked.lorebooks.add(book)
    companion.card_book = book
    log.info("companion_card_book_started", companion_id=companion.pk, lorebook_id=book.pk)
    return book


def companion_set_header(*, companion: Companion, data: bytes | str) -> StoredImage:
    old = companion.header_image
    image = store_image(data, companion, StoredImage.Kind.HEADER)
    companion.header_image = image
    companion.save(update_fields=["header_image", "updated_at"])
    if old is not None:
        old.delete()  # its file goes after commit
    pagecache.user_pages_changed(companion.owner_id)
    return image


def companion_reroll_seed(*, companion: Companion) -> int:
    """A fresh picture seed: the next pictures get a new look (and keep it)."""
    seed = new_image_seed()
    Companion.objects.filter(pk=companion.pk).update(image_seed=seed, updated_at=timezone.now())
    companion.image_seed = seed
    pagecache.user_pages_changed(companion.owner_id)
    log.info("companion_seed_rerolled", companion_id=companion.pk)
    return seed


def companion_remove_header(*, companion: Companion) -> None:
    if companion.header_image_id:
        StoredImage.objects.filter(pk=companion.header_image_id).delete()
        companion.header_image = None
        pagecache.user_pages_changed(companion.owner_id)


def companion_add_tokens(*, companion_id: int, tokens: int) -> None:
    """Add a charged run's tokens to the companion's total (registered with accounts.usage)."""
    Companion.objects.filter(pk=companion_id).update(tokens_burned=F("tokens_burned") + tokens)


@transaction.atomic
def companion_delete(*, companion: Companion) -> None:
    """Delete the companion, its messages, runs and every image file of it."""
    companion_id = companion.pk
    pagecache.user_pages_changed(companion.owner_id)
    companion.delete()  # rows cascade; media.signals removes each file after commit
    log.info("companion_deleted", companion_id=companion_id)


def companions_trim_card_extras(*, max_bytes: int, dry_run: bool = False) -> list[tuple[int, list[str]]]:
    """Bring cards stored before the extras cap (``CARD_EXTRAS_MAX_BYTES``) within it.

    An import keeps a card's extras within the cap; a card imported before the
    cap existed may still carry megabytes that its reply step reads each turn.
    The same rule as at import leaves out the least useful extras first, the
    lorebook last. Each companion is locked while its card is trimmed, so an
    edit saved meanwhile is not overwritten. Returns (companion id, the extras
    left out) for each card over the cap; ``dry_run`` changes nothing.
    """
    trimmed: list[tuple[int, list[str]]] = []
    ids = Companion.objects.filter(config__has_key="card").order_by("pk").values_list("pk", flat=True)
    for companion_id in list(ids):
        with transaction.atomic():
            companion = (
                Companion.objects.select_for_update().only("pk", "owner_id", "config").get(pk=companion_id)
            )
            card = companion.config.get("card")
            if not isinstance(card, dict):
                continue
            left_out = cards.keep_extras_within(card, max_bytes)
            if not left_out:
                continue
            trimmed.append((companion.pk, left_out))
            if dry_run:
                continue
            Companion.objects.filter(pk=companion.pk).update(config=companion.config)
            pagecache.user_pages_changed(companion.owner_id)
        log.info("companion_card_extras_trimmed", companion_id=companion.pk, left_out=left_out)
    return trimmed
