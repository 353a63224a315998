"""The site's settings with the voice stand-ins of ``voice_doubles`` in front of its URLs.

Only ``test_voice.py``'s site runs with these (DJANGO_SETTINGS_MODULE).
"""

from companionhub.settings import *  # noqa: F403

ROOT_URLCONF = "tests.browser.voice_doubles"
