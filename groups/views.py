"""Group pages: list, create, edit, delete, and the group chat itself."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chat import paging
from chat.services import ChatError
from companionhub import ratelimits
from groups import services
from groups.forms import GroupChatForm
from groups.models import GroupMessage
from groups.selectors import group_get_for_user, group_history, group_list_for_user, group_members


@login_required
@require_GET
def group_list(request: HttpRequest) -> HttpResponse:
    return render(request, "groups/list.html", {"groups": group_list_for_user(request.user)})


def _save(request: HttpRequest, form: GroupChatForm, group=None):
    """Call the service with the form's data; its refusals become form errors."""
    data = form.cleaned_data
    fields = {
        "title": data["title"],
        "companions": data["companions"],
        "replies_per_turn": data["replies_per_turn"],
    }
    try:
        if group is None:
            return services.group_create(user=request.user, **fields)
        return services.group_update(group=group, **fields)
    except ValidationError as exc:
        form.add_error(None, exc)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def group_create(request: HttpRequest) -> HttpResponse:
    form = GroupChatForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid() and (group := _save(request, form)):
        messages.success(request, f"{group.title} is ready. Say hello to everyone.")
        return redirect("groups:page", group_id=group.pk)
    return render(request, "groups/form.html", {"form": form, "group": None})


@login_required
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, group_id: int) -> HttpResponse:
    group = group_get_for_user(request.user, group_id)
    form = GroupChatForm(request.POST or None, instance=group, user=request.user)
    if request.method == "POST" and form.is_valid() and _save(request, form, group):
        messages.success(request, "Group saved.")
        return redirect("groups:page", group_id=group.pk)
    return render(request, "groups/form.html", {"form": form, "group": group})


@login_required
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, group_id: int) -> HttpResponse:
    group = group_get_for_user(request.user, group_id)
    if request.method == "POST":
        title = group.title
        try:
            services.group_delete(group=group)
        except ChatError as exc:
            messages.error(request, exc.message)
            return redirect("groups:page", group_id=group.pk)
        messages.success(request, f"{title} is deleted with its messages. The companions are still here.")
        return redirect("groups:list")
    return render(request, "groups/confirm_delete.html", {"group": group})


@login_required
@require_GET
def group_page(request: HttpRequest, group_id: int) -> HttpResponse:
    group = group_get_for_user(request.user, group_id)
    history = group_history(group)
    context = {
        "group": group,
        "members": group_members(group),
        "history": history.messages,
        "has_older": history.has_older,
        "chat_max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
    }
    return render(request, "groups/chat.html", context)


@login_required
@require_GET
def group_older(request: HttpRequest, group_id: int) -> JsonResponse:
    """JSON page of messages older than ``?before=<message id>``, oldest first, each with its sender."""
    group = group_get_for_user(request.user, group_id)
    return paging.older_response(
        request, lambda before: group_history(group, before_id=before), _message_json
    )


def _message_json(message: GroupMessage) -> dict:
    """A page entry names its sender as the page does: None for the user, else the companion."""
    sender = message.sender
    named = None
    if sender is not None:
        avatar_url = sender.header_image.url if sender.header_image_id else None
        named = {"id": sender.pk, "name": sender.name, "avatar_url": avatar_url}
    return {**paging.message_json(message, role="assistant" if message.is_bot else "user"), "sender": named}


@login_required
@require_POST
def group_send(request: HttpRequest, group_id: int) -> HttpResponse:
    """The form fallback without JavaScript: the same service as the websocket."""
    group = group_get_for_user(request.user, group_id)
    try:
        services.group_message_send(user=request.user, group=group, text=request.POST.get("content", ""))
    except ChatError as exc:
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited("chat_message", exc.retry_after or 60) from exc
        messages.error(request, exc.message)
    return redirect("groups:page", group_id=group.pk)
