"""The chat page, its no-JavaScript send form and older history pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import paging, services
from chat.models import Message
from chat.selectors import companion_snapshot, history_page
from companionhub import ratelimits
from companions.cards import fill_macros
from companions.selectors import companion_get_for_user


@login_required
@require_GET
def chat_page(request: HttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    history = history_page(companion)
    context = {
        "companion": companion,
        # Card greetings say {{user}} and {{char}}; the page shows the names.
        "greeting": fill_macros(
            companion.greeting, char=companion.name, user=request.user.name_for_companions
        ),
        "history": history.messages,
        "has_older": history.has_older,
        "snapshot": companion_snapshot(companion),
        "chat_max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    return render(request, "chat/chat.html", context)


@login_required
@require_POST
def send(request: HttpRequest, companion_id: int) -> HttpResponse:
    """The form fallback: the same service as the websocket."""
    companion = companion_get_for_user(request.user, companion_id)
    try:
        services.send_message(
            user=request.user,
            companion=companion,
            text=request.POST.get("content", ""),
            want_image=request.POST.get("image") == "on",
        )
    except services.ChatError as exc:
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited("chat_message", exc.retry_after or 60) from exc
        messages.error(request, exc.message)
    return redirect("chat:page", companion_id=companion.pk)


@login_required
@require_GET
def older(request: HttpRequest, companion_id: int) -> JsonResponse:
    """JSON page of messages older than ``?before=<message id>``, oldest first."""
    companion = companion_get_for_user(request.user, companion_id)
    return paging.older_response(
        request, lambda before: history_page(companion, before_id=before), _message_json
    )


def _message_json(message: Message) -> dict:
    return paging.message_json(message, role=message.role)
