"""The README's configuration table stays true: every variable settings read is in it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_is_documented():
    settings_source = (ROOT / "companionhub" / "settings.py").read_text()
    names = set(re.findall(r'env\.(?:str|bool|int|float|list|db_url)\(\s*"([A-Z_]+)"', settings_source))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_source))
    assert names, "found no variables: the pattern is out of date"
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in readme)
    assert not missing, f"README.md does not document: {missing}"


def test_the_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_every_picture_the_readme_shows_is_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r'!\[[^\]]*\]\(([^)]+)\)|<img src="([^"]+)"', readme)
    paths = [markdown or html for markdown, html in pictures]
    assert paths, "found no pictures: the pattern is out of date"
    missing = [path for path in paths if not (ROOT / path).is_file()]
    assert not missing, f"README.md shows pictures that are not there: {missing}"


def test_the_readme_opens_with_the_chat_on_a_desktop_and_a_phone():
    readme = (ROOT / "README.md").read_text()
    top = readme[: readme.index("## Two commands")]
    assert "docs/screenshots/chat-desktop.png" in top and "docs/screenshots/chat-phone.png" in top
