"""Lorebooks ("world info"): background a user writes once and the chat brings in when it is
mentioned.

A lorebook belongs to a user. It is attached to companions (``Companion.lorebooks``: it
applies to their replies everywhere) and to conversations (``Conversation.lorebooks``: it
applies to every speaker of that chat); a companion imported from a card with an embedded
``character_book`` owns that book as ``Companion.card_book`` (exported back into the card).

An entry's fields follow SillyTavern's World Info where they have a column (keys, secondary
keys and their logic, constant, order, position, depth, probability, recursion switches);
what a file says that no column holds is kept in ``extras`` and given back on export, so a
book imported and exported again loses nothing. How entries fire is ``lorebooks.scanning``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Lorebook(models.Model):
    class Source(models.TextChoices):
        HERE = "", "Made here"
        SILLYTAVERN = "sillytavern", "SillyTavern World Info"
        CARD = "card", "Character card"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lorebooks")
    name = models.CharField(max_length=200)
    description = models.TextField(max_length=10_000, blank=True)
    # How many of the latest messages are scanned for keys (0: constant entries only).
    scan_depth = models.PositiveSmallIntegerField(default=4)
    # The book's own cap on the tokens its entries add (0: the site's budget alone).
    token_budget = models.PositiveIntegerField(default=0)
    # Entry text can trigger further entries, this many passes deep (0: no recursion).
    recursion_depth = models.PositiveSmallIntegerField(default=3)
    # Defaults for entries that do not say.
    case_sensitive = models.BooleanField(default=False)
    match_whole_words = models.BooleanField(default=False)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.HERE, blank=True)
    # What the imported file said that no column holds (a card book's ``extensions``, ...).
    extras = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        indexes = [models.Index(fields=["owner", "name"], name="lorebook_owner_name")]

    def __str__(self) -> str:
        return self.name


class LoreEntry(models.Model):
    class Position(models.TextChoices):
        BEFORE_CHAR = "before_char", "Before the character"
        AFTER_CHAR = "after_char", "After the character"
        AT_DEPTH = "at_depth", "In the chat, this many messages from the end"

    class Logic(models.IntegerChoices):
        # SillyTavern's world_info_logic numbers, as its files store them.
        AND_ANY = 0, "and any secondary key"
        NOT_ALL = 1, "not all secondary keys"
        NOT_ANY = 2, "no secondary key"
        AND_ALL = 3, "and all secondary keys"

    lorebook = models.ForeignKey(Lorebook, on_delete=models.CASCADE, related_name="entries")
    uid = models.PositiveIntegerField()  # the entry's number in its book (SillyTavern's ``uid``)
    comment = models.CharField(max_length=500, blank=True)  # the entry's title
    keys = models.JSONField(default=list, blank=True)
    secondary_keys = models.JSONField(default=list, blank=True)
    selective_logic = models.PositiveSmallIntegerField(choices=Logic.choices, default=Logic.AND_ANY)
    content = models.TextField(blank=True)
    constant = models.BooleanField(default=False)  # goes in whatever was said
    enabled = models.BooleanField(default=True)
    # Insertion order: higher goes later (nearer the chat), and is kept first when over budget.
    order = models.IntegerField(default=100)
    position = models.CharField(max_length=20, choices=Position.choices, default=Position.BEFORE_CHAR)
    depth = models.PositiveSmallIntegerField(default=4)  # for ``at_depth``
    probability = models.PositiveSmallIntegerField(default=100)  # percent chance once triggered
    # None: the book's setting.
    case_sensitive = models.BooleanField(null=True, blank=True)
    match_whole_words = models.BooleanField(null=True, blank=True)
    use_regex = models.BooleanField(default=False)  # every key is a pattern (V3 cards' ``use_regex``)
    exclude_recursion = models.BooleanField(default=False)  # other entries' text cannot trigger it
    prevent_recursion = models.BooleanField(default=False)  # its text triggers no other entry
    extras = models.JSONField(default=dict, blank=True)

    # What the owner edits (the entry form, the admin): every column but the book, the uid and extras.
    EDITABLE = (
        "comment", "keys", "secondary_keys", "selective_logic", "content", "constant", "enabled", "order",
        "position", "depth", "probability", "case_sensitive", "match_whole_words", "use_regex",
        "exclude_recursion", "prevent_recursion",
    )  # fmt: skip

    class Meta:
        ordering = ["lorebook", "-order", "uid"]
        constraints = [
            models.UniqueConstraint(fields=["lorebook", "uid"], name="loreentry_unique_uid"),
            models.CheckConstraint(condition=Q(probability__lte=100), name="loreentry_probability_range"),
        ]

    def __str__(self) -> str:
        return self.comment or ", ".join(str(k) for k in self.keys[:3]) or f"#{self.uid}"
