"""The landing page shows the product: the chat's screenshots, real files, described for screen readers."""

from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse
from PIL import Image

from companionhub import pagecache

pytestmark = pytest.mark.django_db
HOME = reverse("home")
SHOTS = ("img/chat-desktop.png", "img/chat-phone.png")


class Images(HTMLParser):
    """Every ``<img>`` of a page, as its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.found.append(dict(attrs))


def images(html: str) -> dict[str, dict[str, str | None]]:
    parser = Images()
    parser.feed(html)
    return {str(attrs.get("src")): attrs for attrs in parser.found}


@pytest.mark.parametrize("name", SHOTS)
def test_the_screenshot_is_a_static_file_of_the_size_the_page_says(client, name):
    path = finders.find(name)
    assert path, f"{name} is not in static/"
    img = images(client.get(HOME).content.decode())[static(name)]
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == (int(img["width"]), int(img["height"]))


@pytest.mark.parametrize("name", SHOTS)
def test_the_landing_page_shows_the_chat_described_and_lazy_loaded(client, name):
    img = images(client.get(HOME).content.decode())[static(name)]
    assert len(img["alt"] or "") > 20  # says what is in the picture, not just "screenshot"
    assert img["loading"] == "lazy"


def test_the_cached_landing_page_still_shows_the_chat(client):
    first = client.get(HOME).content.decode()
    hits = pagecache.stats()["pages"]["landing"]["hits"]
    again = client.get(HOME).content.decode()
    assert pagecache.stats()["pages"]["landing"]["hits"] == hits + 1  # the second came from the cache
    assert static(SHOTS[0]) in first and static(SHOTS[0]) in again


def test_the_screenshots_are_small_enough_to_serve():
    for name in SHOTS:
        path = finders.find(name)
        assert path and Path(path).stat().st_size < 300_000, name
