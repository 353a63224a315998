from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message, PipelineRun
from companions import catalogue
from companions.models import Companion
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_exchange, make_chat, make_group_of
from tests.companions.factories import make_companion, png_bytes


@pytest.fixture
def conversation(companion):
    """A one-to-one chat whose reply carries a picture, with its completed run; the picture."""
    chat = make_chat(companion)
    said, reply = add_exchange(chat, companion, "hi", "hello")
    picture = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    reply.image = picture
    reply.save()
    PipelineRun.objects.create(
        conversation=chat, turn=said.turn, companion=companion, reply=reply, status="completed"
    )
    return picture


def chat_messages(companion):
    return Message.objects.filter(conversation__participants__companion=companion)


PAGES = ["companions:detail", "companions:settings", "chat:wipe", "companions:delete"]


def test_the_list_shows_only_my_companions_with_state_and_last_message(
    client, user, other_user, conversation
):
    make_companion(other_user, name="NotMine")
    client.force_login(user)
    page = client.get(reverse("companions:list"))
    assert [c.name for c in page.context["companions"]] == ["Mika"]
    assert page.context["companions"][0].last_message_at is not None
    assert b"NotMine" not in page.content
    assert catalogue.DEFAULT_STATE["current_action"].encode() in page.content


def test_the_lists_last_message_time_is_the_latest_activity_of_any_of_its_chats(client, user, companion):
    make_companion(user, name="Quiet")
    older, newer = make_chat(companion), make_chat(companion)
    group = make_group_of(user, [companion, make_companion(user, name="Rin")])
    times = [timezone.now() - timedelta(days=days) for days in (3, 2, 1)]
    for chat, at in zip((older, group, newer), times, strict=True):
        Conversation.objects.filter(pk=chat.pk).update(updated_at=at)
    client.force_login(user)
    listed = {c.name: c.last_message_at for c in client.get(reverse("companions:list")).context["companions"]}
    # Mika: its newest chat; Rin: only in the group, whose activity counts too; Quiet: no chat.
    assert listed == {"Mika": times[2], "Quiet": None, "Rin": times[1]}


def test_the_empty_list_invites_creating_one(client, user):
    client.force_login(user)
    page = client.get(reverse("companions:list"))
    assert b"Create your first companion" in page.content


@pytest.mark.parametrize("name", PAGES)
def test_another_users_companion_is_404_on_every_page(client, other_user, companion, name):
    client.force_login(other_user)
    url = reverse(name, args=[companion.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Hacked"}).status_code == 404
    companion.refresh_from_db()
    assert companion.name == "Mika"
    assert Companion.objects.filter(pk=companion.pk).exists()


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_login(client, companion, name):
    response = client.get(reverse(name, args=[companion.pk]))
    assert response.status_code == 302


def settings_data(companion, **overrides):
    from django.forms.models import model_to_dict

    data = {k: v for k, v in model_to_dict(companion).items() if v is not None}
    data.pop("header_image", None)
    data.update(
        {"config-temperature": "0.5", "config-max_reply_tokens": "300", "config-image_mode": "every_reply"}
    )
    data.update(overrides)
    return data


def test_settings_edit_everything_and_bump_the_version(client, user, companion):
    client.force_login(user)
    data = settings_data(companion, name="Mika Two", hair_color="blue", personality_traits=["shy"])
    response = client.post(reverse("companions:settings", args=[companion.pk]), data)
    assert response.status_code == 302, response.context and response.context["form"].errors
    companion.refresh_from_db()
    assert (companion.name, companion.hair_color, companion.personality_traits) == (
        "Mika Two",
        "blue",
        ["shy"],
    )
    assert companion.config["temperature"] == 0.5
    assert companion.config["image_mode"] == "every_reply"
    assert companion.version == 2


def test_settings_refuse_bad_config(client, user, companion):
    client.force_login(user)
    response = client.post(
        reverse("companions:settings", args=[companion.pk]),
        settings_data(companion, **{"config-temperature": "9"}),
    )
    assert response.status_code == 200
    assert "temperature" in response.context["config_form"].errors


def test_settings_ignore_a_posted_owner(client, user, other_user, companion):
    client.force_login(user)
    client.post(
        reverse("companions:settings", args=[companion.pk]), settings_data(companion, owner=other_user.pk)
    )
    companion.refresh_from_db()
    assert companion.owner == user


def test_replacing_the_picture_deletes_the_old_file(
    client, user, companion, media_root, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(user)
    url = reverse("companions:settings", args=[companion.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, settings_data(companion, header_image=SimpleUploadedFile("a.png", png_bytes())))
    companion.refresh_from_db()
    old_name = companion.header_image.file.name
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            url,
            settings_data(companion, header_image=SimpleUploadedFile("b.png", png_bytes(color=(1, 2, 3)))),
        )
    companion.refresh_from_db()
    assert companion.header_image.file.name != old_name
    assert not (media_root / old_name).exists()
    assert (media_root / companion.header_image.file.name).exists()
    assert StoredImage.objects.filter(companion=companion).count() == 1


def test_wipe_asks_first_and_is_post_only(client, user, companion, conversation):
    client.force_login(user)
    url = reverse("chat:wipe", args=[companion.pk])
    assert url == f"/chat/{companion.pk}/wipe/"
    assert b"cannot be undone" in client.get(url).content
    assert chat_messages(companion).count() == 2


def test_wipe_keeps_the_companion_but_forgets_the_conversation(
    client, user, companion, conversation, media_root, django_capture_on_commit_callbacks
):
    companion.current_outfit = "a red raincoat"
    companion.save()
    client.force_login(user)
    group = make_group_of(user, [companion, make_companion(user, name="Rin")])
    add_exchange(group, companion, "hi all", "hi from the group")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("chat:wipe", args=[companion.pk]))
    assert response["Location"] == reverse("chat:page", args=[companion.pk])
    companion.refresh_from_db()
    assert not Conversation.objects.filter(kind="direct").exists()
    assert not PipelineRun.objects.filter(companion=companion).exists()
    # Its group chats stay.
    assert list(chat_messages(companion).values_list("content", flat=True)) == ["hi all", "hi from the group"]
    assert not StoredImage.objects.filter(companion=companion, kind="generated").exists()
    assert not (media_root / conversation.file.name).exists()
    assert companion.current_outfit == catalogue.DEFAULT_STATE["current_outfit"]
    assert companion.name == "Mika"


def test_wiping_starts_the_scene_again_in_the_owners_language(client, user, companion):
    user.language = "es"
    user.save(update_fields=["language"])
    companion.current_outfit = "a red raincoat"
    companion.save()
    client.force_login(user)
    client.post(reverse("chat:wipe", args=[companion.pk]))
    companion.refresh_from_db()
    assert companion.current_outfit == "lleva un jersey cómodo y vaqueros"


def test_delete_removes_rows_and_every_file(
    client, user, companion, conversation, media_root, django_capture_on_commit_callbacks
):
    header = store_image(png_bytes(), companion, StoredImage.Kind.HEADER)
    companion.header_image = header
    companion.save()
    files = [media_root / header.file.name, media_root / conversation.file.name]
    assert all(f.exists() for f in files)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("companions:delete", args=[companion.pk]))
    assert response["Location"] == reverse("companions:list")
    assert not Companion.objects.filter(pk=companion.pk).exists()
    assert not Conversation.objects.exists()  # its one-to-one chat went with it
    assert not Message.objects.exists()
    assert not StoredImage.objects.exists()
    assert not any(f.exists() for f in files)


def test_the_gallery_shows_my_generated_pictures_newest_first(
    client, user, other_user, companion, conversation
):
    newer = store_image(png_bytes(color=(9, 9, 9)), companion, StoredImage.Kind.GENERATED)
    store_image(png_bytes(), make_companion(other_user), StoredImage.Kind.GENERATED)
    store_image(png_bytes(), companion, StoredImage.Kind.HEADER)
    client.force_login(user)
    page = client.get(reverse("companions:gallery")).context["page"]
    assert [i.pk for i in page] == [newer.pk, conversation.pk]


def test_the_gallery_links_a_picture_to_its_message_in_its_conversation(
    client, user, companion, conversation
):
    reply = Message.objects.get(image=conversation)
    unlinked = store_image(png_bytes(color=(9, 9, 9)), companion, StoredImage.Kind.GENERATED)
    client.force_login(user)
    page = client.get(reverse("companions:gallery")).content.decode()
    linked = reverse("chat:conversation", args=[reply.conversation_id]) + f"#message-{reply.pk}"
    assert f'href="{linked}"' in page
    # A picture no message shows any more opens the companion's chat.
    assert unlinked.url in page
    assert f'href="{reverse("chat:page", args=[companion.pk])}"' in page


def test_the_detail_page_lists_the_companions_chats_with_a_new_chat_button(
    client, user, other_user, companion
):
    chat = make_chat(companion, title="Beach day")
    add_exchange(chat, companion, "shall we swim?", "Race you to the buoy!")
    group = make_group_of(user, [companion, make_companion(user, name="Rin")], title="Crew")
    elsewhere = make_chat(make_companion(user, name="Aya"), title="Not this one")
    strangers = make_chat(make_companion(other_user, name="Zed"), title="Private")
    client.force_login(user)
    page = client.get(reverse("companions:detail", args=[companion.pk])).content.decode()
    for shown in (chat, group):
        assert f'href="{reverse("chat:conversation", args=[shown.pk])}"' in page
    assert "Beach day" in page and "Race you to the buoy!" in page and "Crew" in page
    for hidden in (elsewhere, strangers):
        assert reverse("chat:conversation", args=[hidden.pk]) not in page
    assert "Not this one" not in page and "Private" not in page
    new_chat = reverse("chat:new", args=[companion.pk])
    assert f'action="{new_chat}"' in page and "New chat" in page
    response = client.post(new_chat)
    started = Conversation.objects.filter(kind="direct", participants__companion=companion).exclude(
        pk=chat.pk
    )
    assert response["Location"] == reverse("chat:conversation", args=[started.get().pk])
    assert list(started.get().messages.values_list("role", "content")) == [("assistant", "Hey you!")]


def test_the_gallery_paginates(client, user, companion, settings):
    from companions import views

    for _ in range(views.GALLERY_PAGE_SIZE + 1):
        StoredImage.objects.create(
            companion=companion,
            kind="generated",
            file="x.jpg",
            width=1,
            height=1,
            byte_size=1,
            original_size=1,
        )
    client.force_login(user)
    assert len(client.get(reverse("companions:gallery")).context["page"]) == views.GALLERY_PAGE_SIZE
    assert len(client.get(reverse("companions:gallery"), {"page": 2}).context["page"]) == 1


def test_settings_in_another_language_keep_the_stored_values(client, user, companion, translated):
    translated(
        "de", {"Hair colour": "Haarfarbe", "hair colour\x04Pink": "Rosa", "Save settings": "Speichern"}
    )
    user.language = "de"  # the language saved in the profile
    user.save(update_fields=["language"])
    client.force_login(user)
    page = client.get(reverse("companions:settings", args=[companion.pk])).content.decode()
    assert "Haarfarbe" in page and ">Rosa</label>" in page and "Speichern" in page
    response = client.post(reverse("companions:settings", args=[companion.pk]), settings_data(companion))
    assert response.status_code == 302
    companion.refresh_from_db()
    assert (companion.hair_color, companion.personality_traits) == ("pink", ["playful", "caring"])
