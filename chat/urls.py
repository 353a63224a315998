from django.urls import path

from chat import (
    backend_views,
    listening_views,
    lorebook_views,
    prompt_views,
    transcript_views,
    views,
    voice_views,
)

app_name = "chat"

urlpatterns = [
    # A companion: its latest chat, a new one, all of them, its model, its memory.
    path("<int:companion_id>/", views.companion_chat, name="page"),
    path("<int:companion_id>/new/", views.conversation_new, name="new"),
    path("<int:companion_id>/chats/", views.companion_chats, name="chats"),
    path("<int:companion_id>/model/", backend_views.companion_model, name="model"),
    path("<int:companion_id>/wipe/", views.companion_wipe, name="wipe"),
    # A chat file into a new conversation (the chat list and the companion page link here).
    path("import/", transcript_views.conversation_import, name="import"),
    # Push-to-talk: a recording in, its text out (JSON; nothing of the recording is kept).
    path("transcribe/", listening_views.transcribe, name="transcribe"),
    # A conversation (one-to-one or group).
    path("c/<int:conversation_id>/", views.conversation_page, name="conversation"),
    path("c/<int:conversation_id>/send/", views.send, name="send"),
    path("c/<int:conversation_id>/messages/", views.older, name="older"),
    path("c/<int:conversation_id>/rename/", views.rename, name="rename"),
    path("c/<int:conversation_id>/summary/", views.summary, name="summary"),
    path("c/<int:conversation_id>/export/<slug:fmt>/", transcript_views.conversation_export, name="export"),
    path("c/<int:conversation_id>/delete/", views.delete, name="delete"),
    path("c/<int:conversation_id>/lorebooks/", lorebook_views.conversation_lorebooks, name="lorebooks"),
    path("c/<int:conversation_id>/messages/<int:message_id>/branch/", views.branch, name="branch"),
    path("c/<int:conversation_id>/messages/<int:message_id>/edit/", views.edit, name="edit"),
    # What the LLM was sent for a reply (its owner only).
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/prompt/",
        prompt_views.message_prompt,
        name="message_prompt",
    ),
    # A reply spoken: its clips (replay after a reload), speaking it on demand, one clip's audio.
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/audio/",
        voice_views.message_audio,
        name="message_audio",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/speak/",
        voice_views.message_speak,
        name="message_speak",
    ),
    path("audio/<uuid:clip_id>/", voice_views.speech_clip, name="speech_clip"),
    path("voices/", voice_views.voices, name="voices"),
    path(
        "c/<int:conversation_id>/pictures/<int:message_id>/paint-again/",
        views.picture_paint_again,
        name="picture_paint_again",
    ),
    path(
        "c/<int:conversation_id>/pictures/<int:message_id>/use-as-header/",
        views.picture_use_as_header,
        name="picture_use_as_header",
    ),
    path(
        "c/<int:conversation_id>/pictures/<int:message_id>/delete/",
        views.picture_delete,
        name="picture_delete",
    ),
]
