"""A picture in the chat: paint again, use as profile picture, delete; and what the image step paints with.

Every control over HTTP (the page's buttons) and over the websocket, for the
owner, another user and nobody signed in, with ids that name nothing and
messages without a picture. The painting itself runs on the real worker
against the fake SD WebUI.
"""

from __future__ import annotations

import base64
import io

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import Image

from chat.models import Message, PipelineRun
from companionhub.errors import AppError
from companions.models import Companion
from companions.services import companion_set_header
from media.models import StoredImage
from media.services import store_image
from tests.chat.factories import add_reply, add_user_message, chat_of, make_chat, make_group
from tests.chat.frames import unnumbered
from tests.companions.factories import make_companion, png_bytes

SCENE = "Mika in a red sundress, at the beach"
ANALYSIS = '{"outfit": "red sundress", "location": "beach", "action": "waving", "wants_image": false}'
CONTROLS = ["picture_paint_again", "picture_use_as_header", "picture_delete"]


def picture_chat(companion) -> tuple[Message, Message]:
    """A user message and a reply that shows a picture, in the companion's chat; (reply, the
    user's text-only message)."""
    chat = chat_of(companion)
    said = add_user_message(chat, "A picture at the beach?")
    picture = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED, prompt=SCENE)
    reply = add_reply(chat, companion, "Here!", image=picture)
    return reply, said


def url(name: str, conversation_id: int, message_id) -> str:
    return reverse(f"chat:{name}", args=[conversation_id, message_id])


def state(companion) -> tuple:
    """Everything a control may change, to show that a refusal changed nothing."""
    companion = Companion.objects.get(pk=companion.pk)
    return (
        companion.header_image_id,
        sorted(
            str(pk) for pk in StoredImage.objects.filter(companion=companion).values_list("pk", flat=True)
        ),
        list(
            Message.objects.filter(conversation__participants__companion=companion)
            .order_by("pk")
            .values_list("pk", "image_id")
        ),
        PipelineRun.objects.filter(companion=companion).count(),
    )


@pytest.fixture
def started(monkeypatch):
    """What a run start sends after commit: (what, ...) in order; no chain reaches a worker."""
    calls: list[tuple] = []
    monkeypatch.setattr(
        "chat.turns.start_pipeline", lambda run_id, repaint=False: calls.append(("pipeline", run_id, repaint))
    )
    monkeypatch.setattr("chat.turns.publish", lambda to, *events: calls.append(("publish", to, events)))
    return calls


# --- over HTTP ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_paint_again_starts_a_picture_run_with_a_new_seed_for_the_same_scene(
    client, user, companion, django_capture_on_commit_callbacks, started
):
    reply, said = picture_chat(companion)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("picture_paint_again", reply.conversation_id, reply.pk))
    assert response.status_code == 302
    [run] = PipelineRun.objects.filter(companion=companion)
    assert (run.turn.message_id, run.reply_id, run.want_image) == (said.pk, reply.pk, True)
    assert run.conversation_id == reply.conversation_id
    order = run.analysis["repaint"]
    assert order["prompt"] == SCENE and order["image_id"] == str(reply.image_id)
    assert isinstance(order["seed"], int)
    [(first, conversation_id, (event, speaker)), (then, run_id, repaint)] = started
    assert (first, then) == ("publish", "pipeline")  # clients learn of the run before it starts
    assert (conversation_id, run_id) == (reply.conversation_id, run.pk)
    assert repaint is True  # the picture and the finish, not the reply again
    assert (event["type"], event["kind"], event["reply_id"]) == ("turn.started", "repaint", reply.pk)
    assert (speaker["type"], speaker["companion_id"]) == ("turn.speaker", companion.pk)


@pytest.mark.django_db
def test_paint_again_in_a_group_is_painted_by_the_companion_that_wrote_the_reply(
    client, user, django_capture_on_commit_callbacks, started
):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    said = add_user_message(group, "Send us a picture")
    add_reply(group, mika, "Not me.")
    picture = store_image(png_bytes(), rin, StoredImage.Kind.GENERATED, prompt=SCENE)
    reply = add_reply(group, rin, "Here!", image=picture)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("picture_paint_again", group.pk, reply.pk))
    assert response.status_code == 302
    [run] = PipelineRun.objects.all()
    assert (run.companion_id, run.turn.message_id, run.reply_id) == (rin.pk, said.pk, reply.pk)
    assert [call[0] for call in started] == ["publish", "pipeline"]


@pytest.mark.django_db
def test_use_as_header_copies_the_picture_into_the_header(client, user, companion):
    reply, _ = picture_chat(companion)
    client.force_login(user)
    response = client.post(url("picture_use_as_header", reply.conversation_id, reply.pk))
    assert response.status_code == 302
    companion.refresh_from_db()
    header = companion.header_image
    assert header.kind == StoredImage.Kind.HEADER
    assert header.pk != reply.image_id  # a copy: deleting the picture keeps the header
    assert default_storage.exists(header.file.name)


@pytest.mark.django_db
def test_use_as_header_in_a_group_sets_the_header_of_the_companion_that_painted_it(client, user):
    group = make_group(user, "Mika", "Rin")
    mika, rin = (p.companion for p in group.participants.all())
    add_user_message(group, "Pictures!")
    picture = store_image(png_bytes(), rin, StoredImage.Kind.GENERATED, prompt=SCENE)
    reply = add_reply(group, rin, "Here!", image=picture)
    client.force_login(user)
    assert client.post(url("picture_use_as_header", group.pk, reply.pk)).status_code == 302
    rin.refresh_from_db()
    mika.refresh_from_db()
    assert rin.header_image_id is not None and mika.header_image_id is None


@pytest.mark.django_db
def test_use_as_header_replaces_the_old_header_and_its_file(
    client, user, companion, django_capture_on_commit_callbacks
):
    reply, _ = picture_chat(companion)
    old = companion_set_header(companion=companion, data=png_bytes(color=(1, 2, 3)))
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("picture_use_as_header", reply.conversation_id, reply.pk))
    assert not StoredImage.objects.filter(pk=old.pk).exists()
    assert not default_storage.exists(old.file.name)


@pytest.mark.django_db
def test_delete_removes_the_picture_and_its_file_after_commit(
    client, user, companion, django_capture_on_commit_callbacks
):
    reply, _ = picture_chat(companion)
    name = reply.image.file.name
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("picture_delete", reply.conversation_id, reply.pk))
        assert default_storage.exists(name)  # not before the commit
    assert response.status_code == 302
    for callback in callbacks:
        callback()
    assert not default_storage.exists(name)
    reply.refresh_from_db()
    assert reply.image_id is None
    assert reply.content == "Here!"  # the message stays


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_another_users_picture_is_404_and_unchanged(client, user, other_user, companion, name):
    reply, _ = picture_chat(companion)
    before = state(companion)
    client.force_login(other_user)
    assert client.post(url(name, reply.conversation_id, reply.pk)).status_code == 404
    # Their own chat with my message's id: still not found.
    theirs = make_chat(make_companion(other_user, name="Rin"))
    assert client.post(url(name, theirs.pk, reply.pk)).status_code == 404
    assert state(companion) == before
    assert default_storage.exists(reply.image.file.name)


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_a_picture_of_another_chat_of_mine_is_404(client, user, companion, name):
    """The message must be in the conversation the URL names, even when both are mine."""
    reply, _ = picture_chat(companion)
    other_chat = make_chat(companion)
    before = state(companion)
    client.force_login(user)
    assert client.post(url(name, other_chat.pk, reply.pk)).status_code == 404
    assert state(companion) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_anonymous_is_sent_to_sign_in(client, companion, name):
    reply, _ = picture_chat(companion)
    before = state(companion)
    response = client.post(url(name, reply.conversation_id, reply.pk))
    assert response.status_code == 302 and "login" in response["Location"]
    assert state(companion) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_only_post(client, user, companion, name):
    reply, _ = picture_chat(companion)
    client.force_login(user)
    assert client.get(url(name, reply.conversation_id, reply.pk)).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_the_csrf_token_is_needed(user, companion, name):
    reply, _ = picture_chat(companion)
    before = state(companion)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url(name, reply.conversation_id, reply.pk)).status_code == 403
    assert state(companion) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_an_unknown_id_is_404(client, user, companion, name):
    reply, _ = picture_chat(companion)
    before = state(companion)
    client.force_login(user)
    assert client.post(url(name, reply.conversation_id, 999_999)).status_code == 404
    assert state(companion) == before


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONTROLS)
def test_a_message_without_a_picture_is_refused(client, user, companion, name):
    _, said = picture_chat(companion)
    before = state(companion)
    client.force_login(user)
    response = client.post(url(name, said.conversation_id, said.pk))
    assert response.status_code == 400
    assert "no picture" in response.content.decode()
    assert state(companion) == before


@pytest.mark.django_db
def test_paint_again_passes_the_picture_limit(client, user, companion, rate_limits):
    reply, _ = picture_chat(companion)
    from companionhub import ratelimits

    ratelimits.hit("image", f"user:{user.pk}")  # the small limit: one picture an hour
    before = state(companion)
    client.force_login(user)
    response = client.post(url("picture_paint_again", reply.conversation_id, reply.pk))
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert state(companion) == before


@pytest.mark.django_db
def test_paint_again_waits_for_the_reply_being_written(client, user, companion):
    reply, said = picture_chat(companion)
    # A reply of this chat being written (a row as the pipeline leaves it).
    PipelineRun.objects.create(
        conversation_id=reply.conversation_id, turn=said.turn, companion=companion, status="running"
    )
    client.force_login(user)
    response = client.post(url("picture_paint_again", reply.conversation_id, reply.pk), follow=True)
    assert "still answering" in response.content.decode()
    assert PipelineRun.objects.filter(companion=companion).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["picture_use_as_header", "picture_delete"])
def test_header_and_delete_are_rate_limited(client, user, companion, rate_limits, name):
    client.force_login(user)
    replies = [picture_chat(companion)[0] for _ in range(3)]
    statuses = [client.post(url(name, reply.conversation_id, reply.pk)).status_code for reply in replies]
    assert statuses == [302, 302, 429]
    assert Message.objects.get(pk=replies[2].pk).image_id == replies[2].image_id


@pytest.mark.django_db
def test_the_chat_page_offers_the_buttons_on_a_picture(client, user, companion):
    reply, said = picture_chat(companion)
    client.force_login(user)
    html = client.get(reverse("chat:page", args=[companion.pk])).content.decode()
    for name in CONTROLS:
        assert url(name, reply.conversation_id, reply.pk) in html
        assert url(name, said.conversation_id, said.pk) not in html


@pytest.mark.django_db
def test_the_group_page_offers_the_buttons_on_a_picture(client, user):
    group = make_group(user, "Mika", "Rin")
    rin = group.participants.all()[1].companion
    said = add_user_message(group, "Pictures!")
    picture = store_image(png_bytes(), rin, StoredImage.Kind.GENERATED, prompt=SCENE)
    reply = add_reply(group, rin, "Here!", image=picture)
    client.force_login(user)
    html = client.get(reverse("groups:page", args=[group.pk])).content.decode()
    for name in CONTROLS:
        assert url(name, group.pk, reply.pk) in html
        assert url(name, group.pk, said.pk) not in html


# --- over the websocket ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_delete_over_the_socket_reaches_every_tab(connect, companion, user):
    reply, _ = await sync_to_async(picture_chat)(companion)
    one = await connect(companion.pk, user=user)
    two = await connect(None, user=user, path=f"/ws/conversation/{reply.conversation_id}/")
    await one.send({"type": "picture.delete", "message_id": reply.pk})
    for tab in (one, two):
        assert unnumbered(await tab.receive()) == {"type": "picture.removed", "message_id": reply.pk}
    assert await sync_to_async(lambda: Message.objects.get(pk=reply.pk).image_id)() is None


@pytest.mark.django_db(transaction=True)
async def test_use_as_header_over_the_socket(connect, companion, user):
    reply, _ = await sync_to_async(picture_chat)(companion)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "picture.use_as_header", "message_id": reply.pk})
    event = await client.receive()
    header_id = await sync_to_async(lambda: Companion.objects.get(pk=companion.pk).header_image_id)()
    url = reverse("media:image", args=[header_id])
    assert unnumbered(event) == {"type": "companion.header", "url": url, "companion_id": companion.pk}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["picture.repaint", "picture.use_as_header", "picture.delete"])
async def test_the_socket_refuses_bad_ids_and_other_peoples_pictures(
    connect, companion, user, other_user, kind
):
    reply, said = await sync_to_async(picture_chat)(companion)
    theirs = await sync_to_async(make_companion)(other_user, name="Rin")
    before = await sync_to_async(state)(companion)
    intruder = await connect(theirs.pk, user=other_user)
    owner = await connect(companion.pk, user=user)
    cases = [
        (intruder, reply.pk, "not_found"),  # my picture's id on their own companion's socket
        (owner, 999_999, "not_found"),
        (owner, said.pk, "not_a_picture"),
    ]
    for client, message_id, code in cases:
        await client.send({"type": kind, "message_id": message_id})
        answer = await client.receive()
        assert (answer["type"], answer["code"]) == ("error", code)
    for frame in ({"type": kind}, {"type": kind, "message_id": "7"}, {"type": kind, "message_id": True}):
        await owner.send(frame)
        assert (await owner.receive())["code"] == "bad_frame"
    assert await sync_to_async(state)(companion) == before
    # Another user's companion or conversation cannot even be opened.
    assert (await connect(companion.pk, user=other_user)).close_code == 4404
    path = f"/ws/conversation/{reply.conversation_id}/"
    assert (await connect(None, user=other_user, path=path)).close_code == 4404


@pytest.mark.django_db(transaction=True)
async def test_the_group_socket_has_the_picture_frames_too(connect, user):
    """Groups used to have no picture controls; every frame now works in every conversation."""

    @sync_to_async
    def group_with_picture():
        group = make_group(user, "Mika", "Rin")
        rin = group.participants.all()[1].companion
        add_user_message(group, "Pictures!")
        picture = store_image(png_bytes(), rin, StoredImage.Kind.GENERATED, prompt=SCENE)
        return group, add_reply(group, rin, "Here!", image=picture)

    group, reply = await group_with_picture()
    client = await connect(None, user=user, path=f"/ws/group/{group.pk}/")
    await client.send({"type": "picture.delete", "message_id": reply.pk})
    assert unnumbered(await client.receive()) == {"type": "picture.removed", "message_id": reply.pk}
    assert await sync_to_async(lambda: Message.objects.get(pk=reply.pk).image_id)() is None


# --- painting, on the worker ----------------------------------------------------------------


def jpeg_of(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.mark.django_db(transaction=True)
async def test_paint_again_paints_the_same_scene_with_a_new_seed(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    reply, _ = await sync_to_async(picture_chat)(companion)
    old_image_id = reply.image_id
    client = await connect(companion.pk, user=user)
    await client.send({"type": "picture.repaint", "message_id": reply.pk})
    accepted = await client.receive_until("message.accepted")
    done = await client.receive_until("done")
    assert done["message_id"] == reply.pk and done["run_id"] == accepted["run_id"]
    [started] = client.of_type("turn.started")
    assert (started["kind"], started["reply_id"]) == ("repaint", reply.pk)
    [image] = client.of_type("image")
    run = await PipelineRun.objects.aget(pk=accepted["run_id"])
    assert run.status == "completed"
    new_image = await sync_to_async(lambda: Message.objects.select_related("image").get(pk=reply.pk).image)()
    assert new_image.pk != old_image_id and image["url"] == new_image.url
    assert await StoredImage.objects.filter(pk=old_image_id).aexists()  # the old one stays in the gallery
    [painted] = [r for r in use_fake_sd.requests if r["path"].startswith("/sdapi/v1/txt2img")]
    assert painted["json"]["prompt"] == SCENE
    assert painted["json"]["seed"] == run.analysis["repaint"]["seed"]
    assert use_fake_llm.requests == []  # the reply is not written again
    message = await Message.objects.aget(pk=reply.pk)
    assert message.content == "Here!"


@pytest.mark.django_db(transaction=True)
async def test_a_picture_uses_the_companions_seed_and_header_reference(
    worker, use_fake_llm, use_fake_sd, connect, user
):
    use_fake_llm.completion_text = ANALYSIS
    companion = await sync_to_async(make_companion)(user)
    await sync_to_async(companion_set_header)(companion=companion, data=png_bytes(color=(9, 9, 9)))
    await Companion.objects.filter(pk=companion.pk).aupdate(image_seed=424242, use_header_as_reference=True)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    await client.receive_until("done")
    assert client.of_type("image")
    [painted] = [r for r in use_fake_sd.requests if r["path"].startswith("/sdapi/v1/img")]
    assert painted["path"] == "/sdapi/v1/img2img"
    assert painted["json"]["seed"] == 424242
    assert jpeg_of(painted["json"]["init_images"][0]).format == "JPEG"  # the stored header
    assert 0 < painted["json"]["denoising_strength"] < 1


@pytest.mark.django_db(transaction=True)
async def test_without_the_reference_choice_it_paints_from_text_with_the_seed(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    use_fake_llm.completion_text = ANALYSIS
    await sync_to_async(companion_set_header)(companion=companion, data=png_bytes())
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    await client.receive_until("done")
    [painted] = [r for r in use_fake_sd.requests if r["path"].startswith("/sdapi/v1/txt2img")]
    assert painted["json"]["seed"] == companion.image_seed
    assert "init_images" not in painted["json"]


@pytest.mark.django_db(transaction=True)
async def test_the_pictures_progress_reaches_the_page_in_percent(
    worker, use_fake_llm, use_fake_sd, connect, companion, user
):
    use_fake_llm.completion_text = ANALYSIS
    use_fake_sd.delay = 2.6  # the client asks /sdapi/v1/progress about once a second
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    await client.receive_until("done", timeout=30)
    painting = [e for e in client.of_type("progress") if "percent" in e]
    assert painting, "no progress in percent while painting"
    assert all(e["step"] == "generate_image" and 0 < e["percent"] <= 99 for e in painting)
    assert all(85 <= e["progress"] <= 99 for e in painting)
    assert [e["percent"] for e in painting] == sorted({e["percent"] for e in painting})


# --- through a ComfyUI connection -----------------------------------------------------------


def comfyui_for(companion, base_url: str):
    """The companion paints through a ComfyUI connection (the registry's ``comfyui`` provider)."""
    from chat.backend_models import CompanionBackend, Connection
    from chat.connections import connection_save

    connection = connection_save(
        connection=Connection(name="Comfy", kind="image", provider="comfyui", base_url=base_url)
    )
    CompanionBackend.objects.update_or_create(companion=companion, defaults={"image_connection": connection})


@pytest.mark.django_db(transaction=True)
async def test_a_comfyui_connection_paints_with_the_seed_reference_and_progress(
    worker, use_fake_llm, fake_comfyui, connect, companion, user
):
    use_fake_llm.completion_text = ANALYSIS
    fake_comfyui.progress_steps, fake_comfyui.step_delay = 4, 0.6  # reports outpace the page's 0.5 s
    await sync_to_async(comfyui_for)(companion, fake_comfyui.base_url)
    await sync_to_async(companion_set_header)(companion=companion, data=png_bytes())
    await Companion.objects.filter(pk=companion.pk).aupdate(use_header_as_reference=True)
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    done = await client.receive_until("done", timeout=30)
    [image] = client.of_type("image")
    assert image["message_id"] == done["message_id"]
    [prompt] = fake_comfyui.prompts
    nodes = prompt["workflow"]
    assert nodes["3"]["inputs"]["seed"] == companion.image_seed
    [upload] = fake_comfyui.uploads
    assert nodes["10"]["inputs"]["image"] == upload["filename"]  # the shipped img2img workflow
    percents = [e["percent"] for e in client.of_type("progress") if "percent" in e]
    assert percents and percents == sorted(set(percents)) and max(percents) <= 99


@pytest.mark.django_db(transaction=True)
async def test_a_comfyui_execution_error_is_reported_and_the_reply_stands(
    worker, use_fake_llm, fake_comfyui, connect, companion, user
):
    use_fake_llm.completion_text = ANALYSIS
    await sync_to_async(comfyui_for)(companion, fake_comfyui.base_url)
    fake_comfyui.fail_next(kind="execution_error")
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    done = await client.receive_until("done", timeout=30)
    [failed] = [e for e in client.of_type("error") if e["code"] == "image_failed"]
    # The kind of failure, not ComfyUI's own words (they go to the log, the key taken out).
    assert failed["message"] == "The picture could not be painted (execution_error)."
    reply = await Message.objects.aget(pk=done["message_id"])
    assert reply.image_id is None and reply.is_complete
    assert not await StoredImage.objects.filter(companion=companion, kind="generated").aexists()


@pytest.mark.django_db(transaction=True)
async def test_an_html_page_from_comfyui_is_never_stored(
    worker, use_fake_llm, fake_comfyui, connect, companion, user
):
    use_fake_llm.completion_text = ANALYSIS
    await sync_to_async(comfyui_for)(companion, fake_comfyui.base_url)
    fake_comfyui.fail_next(kind="html", times=5)  # every retry of the step gets the page
    client = await connect(companion.pk, user=user)
    await client.send({"type": "message.send", "content": "Show me!", "image": True})
    await client.receive_until("done", timeout=60)
    assert [e for e in client.of_type("error") if e["code"] == "image_failed"]
    assert client.of_type("image") == []
    assert not await StoredImage.objects.filter(companion=companion, kind="generated").aexists()


# --- a repaint stopped half way -------------------------------------------------------------


@pytest.mark.django_db
def test_cancelling_a_repaint_keeps_the_reply_whole_and_it_cannot_be_retried_into_a_rewrite(
    user, companion, started
):
    from chat import pictures, services

    reply, _ = picture_chat(companion)
    conversation = reply.conversation
    run = pictures.picture_paint_again(user=user, conversation=conversation, message_id=reply.pk)
    services.run_cancel(user=user, conversation=conversation, run_id=run.pk)
    reply.refresh_from_db()
    assert (reply.content, reply.is_complete) == ("Here!", True)
    with pytest.raises(AppError) as refused:
        services.run_retry(user=user, conversation=conversation, run_id=run.pk)
    assert refused.value.code == "not_retryable"
    assert Message.objects.filter(pk=reply.pk).exists()
    assert PipelineRun.objects.filter(companion=companion).count() == 1
