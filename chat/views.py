"""The chat page, its no-JavaScript send form, older history pages and the picture buttons."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat import paging, pictures, services
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


@login_required
@require_POST
def picture_paint_again(request: HttpRequest, companion_id: int, message_id: int) -> HttpResponse:
    return _picture_action(
        request, companion_id, message_id, pictures.picture_paint_again, "image", "Painting it again…"
    )


@login_required
@require_POST
def picture_use_as_header(request: HttpRequest, companion_id: int, message_id: int) -> HttpResponse:
    return _picture_action(
        request,
        companion_id,
        message_id,
        pictures.picture_use_as_header,
        "settings_change",
        "That picture is the profile picture now.",
    )


@login_required
@require_POST
def picture_delete(request: HttpRequest, companion_id: int, message_id: int) -> HttpResponse:
    return _picture_action(
        request, companion_id, message_id, pictures.picture_delete, "settings_change", "Picture deleted."
    )


def _picture_action(
    request: HttpRequest, companion_id: int, message_id: int, action, scope: str, done: str
) -> HttpResponse:
    """The websocket's picture frames for the page without JavaScript: the same services."""
    companion = companion_get_for_user(request.user, companion_id)
    try:
        action(user=request.user, companion=companion, message_id=message_id)
    except services.ChatError as exc:
        if exc.code == "not_found":  # not yours looks the same as not there
            raise Http404(exc.message) from exc
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited(scope, exc.retry_after or 60) from exc
        if exc.code == "not_a_picture":
            return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
        messages.error(request, exc.message)  # busy, quota: something the user can wait out
    else:
        messages.success(request, done)
    return redirect("chat:page", companion_id=companion.pk)


def _message_json(message: Message) -> dict:
    # A reply's reasoning goes with it, to be shown on demand as on the page itself.
    return {**paging.message_json(message, role=message.role), "reasoning": message.reasoning}
