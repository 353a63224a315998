"""ASGI entry point: HTTP through Django, websockets through Channels.

HTTP bodies pass the body rules (``companionhub.body_limits``) before Django
reads them; under Daphne they are already applied while the headers arrive
(``companionhub.daphne_guard``, installed here because Daphne imports this
module before it opens its port), and websocket messages get the size rules
of ``companionhub.daphne_websockets`` the same way. Websockets pass the full-origin check
(``companionhub.ws_origin``) and the session auth middleware before reaching
a consumer. In production the back ends are checked here too (``chat.startup``).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from accounts.ws_auth import TokenAuthMiddleware  # noqa: E402
from companionhub import daphne_guard, daphne_websockets  # noqa: E402
from companionhub.body_limits import BodyLimitMiddleware  # noqa: E402
from companionhub.routing import websocket_urlpatterns  # noqa: E402
from companionhub.ws_origin import SiteOriginValidator  # noqa: E402

daphne_guard.install()
daphne_websockets.install()

if not settings.DEBUG:
    from django.db import connections

    from chat.startup import backends_startup

    # Production: the environment's connection rows are synced, and a site with no LLM back
    # end refuses to start (unless ALLOW_DEMO_BACKENDS=True). In development the sync happens
    # at the first lookup instead, so importing this module (tests do) never needs a database.
    backends_startup()
    connections.close_all()  # the start-up queries' connection is not this thread's to keep

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": SiteOriginValidator(
            # Channels' stubs want route objects of their own, which no public function makes.
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))  # type: ignore[arg-type]
        ),
    }
)

if not settings.DEBUG:
    from companionhub.gc_tuning import settle_heap

    settle_heap()  # start-up's objects, never walked by a full collection again

if settings.EMBEDDED_WORKER:
    from companionhub.embedded_worker import start_embedded_worker

    start_embedded_worker()
