"""Remove a spoken clip's file whenever its row goes.

A receiver, as for pictures (``media.signals``): cascades (a message, a
conversation, a companion or an account deleted) and admin bulk deletes never
call ``Model.delete()``, and a file left behind would be private audio nobody
can delete any more. Having a receiver also makes Django delete the rows one
by one, so every cascade reaches it. Removal waits for the commit, so a
rolled-back delete keeps its file.
"""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from chat.models import SpeechClip
from media.storage import delete_file_on_commit


@receiver(post_delete, sender=SpeechClip, dispatch_uid="chat_delete_speech_file_with_row")
def delete_speech_file_with_row(sender: type[SpeechClip], instance: SpeechClip, **kwargs: object) -> None:
    delete_file_on_commit(instance.file.name)
