import pytest
from django.urls import reverse

from companions.models import Companion, CompanionDraft
from media.models import StoredImage
from tests.companions.factories import VALID, png_bytes

STEP_FIELDS = {
    1: ["style", "gender"],
    2: ["age", "ethnicity", "skin_tone", "hair_color", "hair_style", "eye_color"],
    3: ["body_type", "height", "chest", "distinguishing_features"],
    4: [
        "name",
        "personality_traits",
        "hobbies",
        "occupation",
        "relationship",
        "backstory",
        "greeting",
        "visual_prompt",
        "system_prompt",
    ],
}


def step_url(n):
    return reverse("companions:wizard", kwargs={"step": n})


def step_data(n, **overrides):
    data = {name: VALID[name] for name in STEP_FIELDS[n]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def walk_to_finish(client):
    for n in range(1, 5):
        response = client.post(step_url(n), step_data(n))
        assert response.status_code == 302, response.context and response.context["form"].errors
        assert response["Location"] == step_url(n + 1)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_it_requires_login(client, db):
    assert client.get(reverse("companions:wizard_start")).status_code == 302


def test_the_happy_path_creates_exactly_one_companion_with_a_picture(signed_in, user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    walk_to_finish(signed_in)
    finish = signed_in.get(step_url(5))
    assert finish.status_code == 200
    assert b"Mika" in finish.content  # the summary
    from django.core.files.uploadedfile import SimpleUploadedFile

    picture = SimpleUploadedFile("me.png", png_bytes(900, 700), content_type="image/png")
    response = signed_in.post(step_url(5), {"action": "next", "header_image": picture})
    companion = Companion.objects.get(owner=user)
    assert response["Location"] == reverse("chat:page", args=[companion.pk])
    assert companion.name == "Mika"
    assert companion.personality_traits == ["playful", "caring"]
    assert companion.age == 25
    assert companion.config["image_mode"] == "on_request"
    assert companion.header_image.kind == StoredImage.Kind.HEADER
    assert (tmp_path / companion.header_image.file.name).exists()
    assert not CompanionDraft.objects.filter(owner=user).exists()


def test_finish_twice_creates_one_companion(signed_in, user):
    walk_to_finish(signed_in)
    first = signed_in.post(step_url(5), {"action": "next"})
    second = signed_in.post(step_url(5), {"action": "next"})
    assert Companion.objects.filter(owner=user).count() == 1
    assert first.status_code == 302
    assert second.status_code == 302  # back to step 1 of a fresh draft or the list, never a second companion


def test_the_service_refuses_a_used_draft(user):
    from companions import services

    services.draft_get_or_create(user=user)
    draft = CompanionDraft.objects.get(owner=user)
    services.draft_save_step(draft=draft, data=VALID, reached_step=5)
    services.companion_create_from_draft(user=user, header=None)
    with pytest.raises(services.DraftAlreadyUsed):
        services.companion_create_from_draft(user=user, header=None)
    assert Companion.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    ("step", "overrides", "field"),
    [
        (1, {"style": "watercolour"}, "style"),
        (1, {"gender": None}, "gender"),
        (2, {"age": 17}, "age"),
        (2, {"age": 120}, "age"),
        (2, {"hair_color": "<script>"}, "hair_color"),
        (3, {"body_type": None}, "body_type"),
        (3, {"distinguishing_features": "x" * 301}, "distinguishing_features"),
        (4, {"name": "   "}, "name"),
        (4, {"name": "n" * 51}, "name"),
        (4, {"personality_traits": []}, "personality_traits"),
        (
            4,
            {"personality_traits": ["caring", "shy", "calm", "witty", "loyal", "curious"]},
            "personality_traits",
        ),
        (4, {"hobbies": ["gaming", "knitting-at-3am"]}, "hobbies"),
        (4, {"system_prompt": "s" * 20_001}, "system_prompt"),
    ],
)
def test_each_step_validates_on_its_own(signed_in, user, step, overrides, field):
    for n in range(1, step):
        signed_in.post(step_url(n), step_data(n))
    response = signed_in.post(step_url(step), step_data(step, **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Companion.objects.exists()


def test_back_keeps_what_was_entered(signed_in):
    signed_in.post(step_url(1), step_data(1))
    signed_in.post(step_url(2), step_data(2, hair_color="blue"))
    # On step 3, type something, then go back: both steps keep their values.
    back = signed_in.post(step_url(3), {"action": "back", "body_type": "athletic"})
    assert back["Location"] == step_url(2)
    page2 = signed_in.get(step_url(2))
    assert page2.context["form"]["hair_color"].value() == "blue"
    page3 = signed_in.get(step_url(3))
    assert page3.context["form"]["body_type"].value() == "athletic"


def test_a_reload_or_second_tab_sees_the_same_draft(signed_in, user, client):
    signed_in.post(step_url(1), step_data(1, style="realistic"))
    from django.test import Client

    second_tab = Client()
    second_tab.force_login(user)
    start = second_tab.get(reverse("companions:wizard_start"))
    assert start["Location"] == step_url(2)
    assert second_tab.get(step_url(1)).context["form"]["style"].value() == "realistic"
    assert CompanionDraft.objects.filter(owner=user).count() == 1


def test_steps_cannot_be_skipped(signed_in):
    response = signed_in.get(step_url(4))
    assert response["Location"] == step_url(1)


def test_a_bad_picture_is_refused_and_nothing_is_created(signed_in, user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    walk_to_finish(signed_in)
    fake = SimpleUploadedFile("me.png", b"<html>not a picture</html>", content_type="image/png")
    response = signed_in.post(step_url(5), {"action": "next", "header_image": fake})
    assert response.status_code == 200
    assert response.context["form"].errors["header_image"]
    assert not Companion.objects.exists()
    assert CompanionDraft.objects.filter(owner=user).exists()  # can try another picture


def test_options_render_as_visible_choices(signed_in):
    page = signed_in.get(step_url(1)).content.decode()
    assert 'class="chip"' in page
    assert 'type="radio"' in page


def test_discard_removes_the_draft(signed_in, user):
    signed_in.post(step_url(1), step_data(1))
    signed_in.post(reverse("companions:wizard_discard"))
    assert not CompanionDraft.objects.filter(owner=user).exists()


def test_a_step_shows_labels_in_the_active_language_and_stores_the_values(signed_in, user, translated):
    translated("de", {"Gender": "Geschlecht", "gender\x04Woman": "Frau", "art style\x04Anime": "Anime-Stil"})
    signed_in.defaults["HTTP_ACCEPT_LANGUAGE"] = "de"  # as a German browser asks
    page = signed_in.get(step_url(1)).content.decode()
    assert "Geschlecht" in page and ">Frau</label>" in page and ">Anime-Stil</label>" in page
    assert 'value="female"' in page
    response = signed_in.post(step_url(1), step_data(1))
    assert response.status_code == 302
    draft = CompanionDraft.objects.get(owner=user)
    assert (draft.data["style"], draft.data["gender"]) == ("anime", "female")


def test_a_refusal_is_worded_in_the_active_language(signed_in, translated):
    walk_to_finish(signed_in)
    translated("de", {"Pick at most %(count)s.": "Wähle höchstens %(count)s aus."})
    six = ["caring", "playful", "shy", "confident", "sarcastic", "romantic"]
    signed_in.defaults["HTTP_ACCEPT_LANGUAGE"] = "de"
    page = signed_in.post(step_url(4), step_data(4, personality_traits=six)).content.decode()
    assert "Wähle höchstens 5 aus." in page


def test_a_selects_blank_choice_is_ours_to_translate(signed_in, translated):
    walk_to_finish(signed_in)
    translated("de", {"- Select an option -": "- Bitte auswählen -", "occupation\x04Artist": "Künstler/in"})
    signed_in.defaults["HTTP_ACCEPT_LANGUAGE"] = "de"
    page = signed_in.get(step_url(4)).content.decode()
    assert '<option value="">- Bitte auswählen -</option>' in page
    assert '<option value="artist" selected>Künstler/in</option>' in page


def test_a_new_companion_starts_its_scene_in_its_owners_language(signed_in, user):
    """The scene is text the owner reads on the page: it starts in their language (the chat
    rewrites it later in the reply's language)."""
    user.language = "de"
    user.save(update_fields=["language"])
    walk_to_finish(signed_in)
    signed_in.post(step_url(5), {"action": "next"})
    companion = Companion.objects.get(owner=user)
    assert companion.current_location == "zu Hause im Wohnzimmer"
    assert companion.current_action == "entspannt auf dem Sofa"
