"""Remove an image's file whenever its row goes.

A receiver rather than a service call on purpose: admin bulk deletes and
cascades (companion or user deleted) never call ``Model.delete()``, and a
file left behind would be a private picture nobody can delete any more.
Having a receiver also makes Django delete rows one by one, so every
cascade reaches it. Removal waits for the commit, so a rolled-back delete
keeps its file.
"""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from accounts.models import User
from companionhub import pagecache
from media.models import StoredImage
from media.storage import delete_file_on_commit


@receiver(post_delete, sender=StoredImage, dispatch_uid="media_delete_file_with_row")
def delete_file_with_row(sender: type[StoredImage], instance: StoredImage, **kwargs: object) -> None:
    delete_file_on_commit(instance.file.name)
    # The same reason holds for the cached gallery and companion list: every
    # deleted picture row, however it went, must refresh its owner's pages.
    # The owner's id alone, through the companion's relation to its owner
    # (``instance.companion`` would load the whole row, its card included, per picture).
    owner_id = User.objects.filter(companions=instance.companion_id).values_list("pk", flat=True).first()
    if owner_id is not None:
        pagecache.user_pages_changed(owner_id)
