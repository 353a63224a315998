"""Remove an export's zip whenever its row goes: expired, or its account deleted (a cascade).

A receiver for the reason ``media.signals`` is one: cascades never call
``Model.delete()``, and a zip left behind would be a copy of a deleted
account's data. Removal waits for the commit, so a rolled-back delete keeps it.
"""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from media.storage import delete_file_on_commit
from portability.models import AccountExport


@receiver(post_delete, sender=AccountExport, dispatch_uid="portability_delete_file_with_row")
def delete_file_with_row(sender: type[AccountExport], instance: AccountExport, **kwargs: object) -> None:
    delete_file_on_commit(instance.file)
