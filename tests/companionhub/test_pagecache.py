"""Page caching: the anonymous landing page, per-user companion list and gallery data."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message as FlashMessage
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from chat import services as chat_services
from chat import turns
from chat.models import Conversation
from companionhub import pagecache
from companions import services
from companions.models import Companion
from media.models import StoredImage
from media.services import delete_image, store_image
from tests.chat.factories import add_exchange, make_chat
from tests.companions.factories import make_companion, png_bytes

HOME = reverse("home")
LIST = reverse("companions:list")
GALLERY = reverse("companions:gallery")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_counters():
    pagecache.reset_stats()


@pytest.fixture
def companion(user):
    return make_companion(user)


def counts(page: str) -> tuple[int, int]:
    row = pagecache.stats()["pages"][page]
    return row["hits"], row["misses"]


CSRF_VALUE = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]*)"')


def csrf_tokens(content: bytes) -> list[bytes]:
    return CSRF_VALUE.findall(content)


def without_csrf(content: bytes) -> bytes:
    """The page with the language form's per-visitor CSRF token taken out."""
    return CSRF_VALUE.sub(b"", content)


def names_on_list(client) -> list[str]:
    return [c.name for c in client.get(LIST).context["companions"]]


# --- landing page ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_anonymous_landing_page_is_served_from_the_cache_after_the_first_load(client):
    first = client.get(HOME)
    assert counts("landing") == (0, 1)
    second = client.get(HOME)
    assert counts("landing") == (1, 1)
    assert second.status_code == 200
    assert without_csrf(second.content) == without_csrf(first.content)
    assert b"Create an account" in second.content
    # The language form's token is this visitor's, made for this request, not the cached one's.
    assert csrf_tokens(second.content) and b"\x00" not in second.content
    # Headers are made per request, not cached: the CSP header is there.
    assert "Content-Security-Policy" in second.headers
    assert "Cookie" in second.headers.get("Vary", "")


def test_signed_in_users_never_get_the_anonymous_landing_page(client, user):
    client.get(HOME)  # anonymous version cached
    make_companion(user)  # (without one, the root leads to making the first)
    client.force_login(user)
    page = client.get(HOME)
    assert b"Your companions" in page.content
    assert b"Create an account" not in page.content
    assert counts("landing") == (0, 1)  # not served from, nor counted against, the shared entry


def test_the_anonymous_landing_page_never_holds_a_signed_in_render(client, user):
    client.force_login(user)
    signed_in_tokens = csrf_tokens(client.get(HOME).content)
    client.logout()
    page = client.get(HOME)
    assert b"Sign out" not in page.content
    assert not set(csrf_tokens(page.content)) & set(signed_in_tokens)
    again = client.get(HOME)
    assert b"Sign out" not in again.content
    assert counts("landing") == (1, 1)


@pytest.mark.django_db
def test_a_waiting_flash_message_bypasses_the_cache_and_is_shown(client):
    client.get(HOME)
    storage = CookieStorage(HttpRequest())
    client.cookies["messages"] = storage._encode(
        [FlashMessage(constants.SUCCESS, "You are signed out, see you soon.")]
    )
    page = client.get(HOME)
    assert b"You are signed out, see you soon." in page.content
    assert counts("landing") == (0, 1)
    # The message is gone; the page after it is the shared one again, without it.
    page = client.get(HOME)
    assert b"You are signed out" not in page.content


@pytest.mark.django_db
def test_a_render_that_used_the_csrf_token_is_not_stored(rf, settings):
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse
    from django.middleware.csrf import get_token

    @pagecache.anonymous_page
    def view(request):
        return HttpResponse(f"token {get_token(request)}")

    def request():
        r = rf.get("/")
        r.user = AnonymousUser()
        r._messages = CookieStorage(r)
        return r

    first = view(request())
    second = view(request())
    assert first.content != second.content
    assert counts("landing") == (0, 2)


@pytest.mark.django_db
def test_a_render_that_used_the_csp_nonce_is_not_stored(rf):
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse
    from django.utils.csp import LazyNonce

    @pagecache.anonymous_page
    def view(request):
        return HttpResponse(f"nonce {request._csp_nonce}")

    def request():
        r = rf.get("/")
        r.user = AnonymousUser()
        r._messages = CookieStorage(r)
        r._csp_nonce = LazyNonce()
        return r

    assert view(request()).content != view(request()).content
    assert counts("landing") == (0, 2)


@pytest.mark.django_db
def test_caching_can_be_switched_off(client, settings):
    settings.CACHE_PAGES = False
    client.get(HOME)
    client.get(HOME)
    assert counts("landing") == (0, 0)


# --- companion list ---------------------------------------------------------------


def test_the_companion_list_is_a_hit_after_the_first_load(client, user, companion):
    client.force_login(user)
    assert names_on_list(client) == ["Mika"]
    assert names_on_list(client) == ["Mika"]
    assert counts("companion_list") == (1, 1)


def test_the_list_data_is_per_user_and_never_leaks(client, user, other_user, companion):
    make_companion(other_user, name="Secret")
    client.force_login(user)
    assert names_on_list(client) == ["Mika"]
    client.force_login(other_user)
    page = client.get(LIST)
    assert [c.name for c in page.context["companions"]] == ["Secret"]
    assert b"Mika" not in page.content
    client.force_login(user)
    page = client.get(LIST)
    assert b"Secret" not in page.content
    assert counts("companion_list") == (1, 2)


def test_the_cached_list_page_still_gets_a_fresh_csrf_token(client, user, companion):
    client.force_login(user)
    first = client.get(LIST)
    client.cookies.pop("csrftoken", None)
    second = client.get(LIST)
    assert counts("companion_list") == (1, 1)
    token = second.context["csrf_token"]
    assert str(token) and str(token).encode() in second.content
    assert first.context["csrf_token"] != token


def test_a_flash_message_shows_on_a_cached_list(client, user, companion):
    client.force_login(user)
    client.get(LIST)
    response = client.post(reverse("companions:wizard_discard"), follow=True)
    assert b"Draft discarded." in response.content
    assert counts("companion_list") == (1, 1)


def _load_list_twice_then(client, user, write) -> list[str]:
    client.force_login(user)
    names_on_list(client)
    names_on_list(client)
    write()
    return names_on_list(client)


def test_creating_a_companion_in_the_wizard_invalidates(client, user, companion):
    from tests.companions.test_wizard import step_data, step_url

    client.force_login(user)
    names_on_list(client)
    client.get(reverse("companions:wizard_start"))
    for n in range(1, 5):
        client.post(step_url(n), step_data(n))
    response = client.post(step_url(5), {"action": "next"})
    assert response.status_code == 302
    assert len(names_on_list(client)) == Companion.objects.filter(owner=user).count() == 2


def test_importing_a_card_invalidates(client, user, companion):
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Imported", "description": "x"}}

    def write():
        response = client.post(
            reverse("companions:card_import"),
            {"card": SimpleUploadedFile("c.json", json.dumps(card).encode())},
        )
        assert response.status_code == 302

    assert "Imported" in _load_list_twice_then(client, user, write)


def test_settings_change_invalidates(client, user, companion):
    from tests.companions.test_pages import settings_data

    def write():
        response = client.post(
            reverse("companions:settings", args=[companion.pk]), settings_data(companion, name="Renamed")
        )
        assert response.status_code == 302

    assert _load_list_twice_then(client, user, write) == ["Renamed"]


def test_a_new_header_picture_invalidates(client, user, companion):
    def write():
        services.companion_set_header(companion=companion, data=png_bytes())

    _load_list_twice_then(client, user, write)
    assert client.get(LIST).context["companions"][0].header_url == companion.header_image.url


def test_deleting_a_companion_invalidates(client, user, companion):
    def write():
        assert client.post(reverse("companions:delete", args=[companion.pk])).status_code == 302

    assert _load_list_twice_then(client, user, write) == []


def test_wiping_memory_invalidates(client, user, companion):
    add_exchange(make_chat(companion), companion, "hi", "hello")

    def write():
        assert client.post(reverse("chat:wipe", args=[companion.pk])).status_code == 302

    _load_list_twice_then(client, user, write)
    assert client.get(LIST).context["companions"][0].last_message_at is None


def test_sending_a_message_invalidates(client, user, companion, monkeypatch):
    monkeypatch.setattr(turns, "start_pipeline", lambda run_id, **kwargs: None)
    chat = make_chat(companion)
    long_ago = timezone.now() - timedelta(days=30)
    Conversation.objects.filter(pk=chat.pk).update(updated_at=long_ago)

    def write():
        chat_services.message_send(user=user, conversation=chat, text="hello")

    _load_list_twice_then(client, user, write)
    assert client.get(LIST).context["companions"][0].last_message_at > long_ago


def test_starting_and_deleting_a_chat_invalidate(client, user, companion):
    def start():
        assert client.post(reverse("chat:new", args=[companion.pk])).status_code == 302

    _load_list_twice_then(client, user, start)
    assert client.get(LIST).context["companions"][0].last_message_at is not None
    chat = Conversation.objects.get()

    def delete():
        assert client.post(reverse("chat:delete", args=[chat.pk])).status_code == 302

    _load_list_twice_then(client, user, delete)
    assert client.get(LIST).context["companions"][0].last_message_at is None


def test_another_users_write_does_not_invalidate_mine(client, user, other_user, companion):
    def write():
        make = services.companion_set_header
        make(companion=make_companion(other_user), data=png_bytes())

    _load_list_twice_then(client, user, write)
    assert counts("companion_list") == (2, 1)


# --- gallery ----------------------------------------------------------------------


def gallery_ids(client, **params) -> list:
    return [item.pk for item in client.get(GALLERY, params).context["page"]]


def test_the_gallery_is_a_hit_after_the_first_load_and_per_user(client, user, other_user, companion):
    mine = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    theirs = store_image(png_bytes(), make_companion(other_user), StoredImage.Kind.GENERATED)
    client.force_login(user)
    assert gallery_ids(client) == [mine.pk]
    assert gallery_ids(client) == [mine.pk]
    assert counts("gallery") == (1, 1)
    client.force_login(other_user)
    assert gallery_ids(client) == [theirs.pk]
    assert counts("gallery") == (1, 2)


def test_a_stored_picture_invalidates_the_gallery(client, user, companion):
    client.force_login(user)
    assert gallery_ids(client) == []
    assert gallery_ids(client) == []
    image = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    assert gallery_ids(client) == [image.pk]


def test_a_deleted_picture_invalidates_the_gallery(client, user, companion):
    image = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    client.force_login(user)
    assert gallery_ids(client) == [image.pk]
    delete_image(image)
    assert gallery_ids(client) == []


def test_a_bulk_delete_in_the_admin_invalidates_the_gallery(client, user, companion):
    image = store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    client.force_login(user)
    assert gallery_ids(client) == [image.pk]
    StoredImage.objects.filter(pk=image.pk).delete()  # what an admin bulk action does
    assert gallery_ids(client) == []


def test_renaming_the_companion_invalidates_the_gallery(client, user, companion):
    from tests.companions.test_pages import settings_data

    store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    client.force_login(user)
    assert b"Picture of Mika" in client.get(GALLERY).content
    client.post(reverse("companions:settings", args=[companion.pk]), settings_data(companion, name="Zed"))
    assert b"Picture of Zed" in client.get(GALLERY).content


def test_gallery_pages_are_cached_apart_and_bad_numbers_are_page_one(client, user, companion, settings):
    for _ in range(3):
        store_image(png_bytes(), companion, StoredImage.Kind.GENERATED)
    from companions import views

    views_size = views.GALLERY_PAGE_SIZE
    views.GALLERY_PAGE_SIZE = 2
    try:
        client.force_login(user)
        assert len(gallery_ids(client)) == 2
        assert len(gallery_ids(client, page=2)) == 1
        assert len(gallery_ids(client, page="nonsense")) == 2
        assert len(gallery_ids(client, page=99)) == 1  # past the end: the last page
    finally:
        views.GALLERY_PAGE_SIZE = views_size
    assert counts("gallery") == (1, 3)


# --- hit ratio ----------------------------------------------------------------------


def test_healthz_reports_hits_misses_and_ratio(client, user, companion, staff_user):
    client.force_login(user)
    names_on_list(client)
    names_on_list(client)
    names_on_list(client)
    client.force_login(staff_user)  # the details are for staff
    report = client.get(reverse("healthz")).json()["page_cache"]
    assert report["pages"]["companion_list"] == {"hits": 2, "misses": 1, "ratio": 0.6667}
    assert report["hits"] >= 2 and report["misses"] >= 1
    assert 0 < report["ratio"] <= 1
    assert report["since"] is not None


def test_a_write_in_a_transaction_bumps_again_on_commit(user, django_capture_on_commit_callbacks):
    """A load racing the write (before the commit) can only cache under a version the commit leaves."""
    from django.db import transaction

    before = pagecache._user_version(user.pk)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        pagecache.user_pages_changed(user.pk)
        racing = pagecache._user_version(user.pk)
        assert racing == before + 1
    assert pagecache._user_version(user.pk) == racing + 1
