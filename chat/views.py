"""The chat pages: a conversation, its no-JavaScript forms and older-message pages, the
companion's chats, and groups. Thin: an access helper, one service call, render or redirect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from chat import conversations, editing, paging, pictures, services, summaries
from chat.forms import GroupForm, RenameForm, SummaryForm, WipeMemoryForm
from chat.models import Conversation, Message
from chat.selectors import (
    chat_list,
    conversation_get_for_user,
    conversation_members,
    conversation_snapshot,
    conversations_for_user,
    group_get_for_user,
    history_page,
    with_last_message,
)
from companionhub import ratelimits
from companionhub.errors import AppError
from companions.selectors import companion_get_for_user

# --- a conversation -------------------------------------------------------------------------


def _render_conversation(request: AuthenticatedHttpRequest, conversation: Conversation) -> HttpResponse:
    history = history_page(conversation)
    members = conversation_members(conversation)
    context = {
        "conversation": conversation,
        "members": members,
        "companion": members[0] if len(members) == 1 else None,
        "history": history.messages,
        "has_older": history.has_older,
        "snapshot": conversation_snapshot(conversation),
        "chats": chat_list(request.user.pk, companion=members[0] if len(members) == 1 else None)[:30],
        "branched_from": _branch_origin(conversation),
        "chat_max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "summary_form": SummaryForm(initial={"summary": conversation.summary}),
        "summary_max_chars": summaries.SUMMARY_MAX_CHARS,
        # Each message's no-JavaScript pages (branch, correct) under it: built once, not reversed
        # per message.
        "messages_url": reverse("chat:conversation", args=[conversation.pk]) + "messages/",
    }
    return render(request, "chat/conversation.html", context)


def _branch_origin(conversation: Conversation) -> Message | None:
    if not conversation.branched_from_id:
        return None
    return Message.objects.filter(
        pk=conversation.branched_from_id, conversation__owner=conversation.owner
    ).first()


@login_required
@require_GET
def companion_chat(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    """The companion's most recent one-to-one chat (started, with its greeting, if it has none)."""
    companion = companion_get_for_user(request.user, companion_id)
    conversation = conversations.conversation_for_companion(user=request.user, companion=companion)
    return _render_conversation(request, conversation_get_for_user(request.user, conversation.pk))


@login_required
@require_GET
def conversation_page(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    return _render_conversation(request, conversation_get_for_user(request.user, conversation_id))


@login_required
@require_POST
def conversation_new(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    """*New chat*: a fresh one-to-one chat that opens with the companion's greeting."""
    companion = companion_get_for_user(request.user, companion_id)
    ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    conversation = conversations.conversation_start(user=request.user, companion=companion)
    return redirect("chat:conversation", conversation_id=conversation.pk)


@login_required
@require_GET
def companion_chats(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    """Every chat of the companion (one-to-one and groups), newest first."""
    companion = companion_get_for_user(request.user, companion_id)
    chats = chat_list(request.user.pk, companion=companion)
    return render(request, "chat/chat_list.html", {"companion": companion, "chats": chats})


@login_required
@require_POST
def send(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    """The form fallback: the same service as the websocket."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    try:
        services.message_send(
            user=request.user,
            conversation=conversation,
            text=request.POST.get("content", ""),
            want_image=request.POST.get("image") == "on",
        )
    except AppError as exc:
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited("chat_message", exc.retry_after or 60) from exc
        messages.error(request, exc.message)
    return redirect("chat:conversation", conversation_id=conversation.pk)


@login_required
@require_GET
def older(request: AuthenticatedHttpRequest, conversation_id: int) -> JsonResponse:
    """JSON page of messages older than ``?before=<message id>``, oldest first."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    return paging.older_response(
        request, lambda before: history_page(conversation, before_id=before), message_json
    )


def message_json(message: Message) -> dict[str, Any]:
    """A page entry: the message, who wrote it (None for the user), its reasoning, and whether
    it was corrected in place."""
    sender = message.sender
    named = None
    if sender is not None:
        avatar_url = sender.header_image.url if sender.header_image is not None else None
        named = {"id": sender.pk, "name": sender.name, "avatar_url": avatar_url}
    return {
        **paging.message_json(message, role=message.role),
        "sender": named,
        "reasoning": message.reasoning,
        "edited": message.edited_at is not None,
    }


@login_required
@require_POST
def rename(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_get_for_user(request.user, conversation_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            conversations.conversation_rename(
                user=request.user, conversation=conversation, title=form.cleaned_data["title"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Chat renamed."))
    else:
        messages.error(request, _("Give it a title of at most %(count)s characters.") % {"count": 100})
    return redirect("chat:conversation", conversation_id=conversation.pk)


@login_required
@require_POST
def summary(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    """The chat's summary of its earlier messages, as the user rewrites (or clears) it."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    form = SummaryForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for error in form.errors["summary"]))
        return redirect("chat:conversation", conversation_id=conversation.pk)
    try:
        summaries.conversation_set_summary(
            user=request.user, conversation=conversation, text=form.cleaned_data["summary"]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        cleared = not form.cleaned_data["summary"]
        messages.success(request, _("Summary cleared.") if cleared else _("Summary saved."))
    return redirect("chat:conversation", conversation_id=conversation.pk)


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_get_for_user(request.user, conversation_id)
    members = conversation_members(conversation)
    if request.method == "POST":
        try:
            conversations.conversation_delete(user=request.user, conversation=conversation)
        except AppError as exc:
            messages.error(request, exc.message)
            return redirect("chat:conversation", conversation_id=conversation.pk)
        messages.success(request, _("The chat is deleted with its messages. The companions are still here."))
        if conversation.is_group:
            return redirect("groups:list")
        return redirect("chat:chats", companion_id=members[0].pk) if members else redirect("companions:list")
    return render(request, "chat/confirm_delete.html", {"conversation": conversation, "members": members})


def _message_page(
    request: AuthenticatedHttpRequest, conversation: Conversation, message_id: int, action: str
) -> HttpResponse:
    """The page without JavaScript for one message's action (branch, correct): its form."""
    message = get_object_or_404(Message, pk=message_id, conversation=conversation)
    context = {"conversation": conversation, "message": message, "action": action}
    return render(request, "chat/message_action.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def branch(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """*Branch here* without JavaScript (GET: the form): the service of ``conversation.branch``."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    if request.method == "GET":
        return _message_page(request, conversation, message_id, "branch")
    try:
        made = conversations.conversation_branch(
            user=request.user, conversation=conversation, message_id=message_id
        )
    except AppError as exc:
        if exc.code == "not_found":
            raise Http404(exc.message) from exc
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited("settings_change", exc.retry_after or 60) from exc
        messages.error(request, exc.message)
        return redirect("chat:conversation", conversation_id=conversation.pk)
    messages.success(request, _("A new chat goes on from that message. The original is unchanged."))
    return redirect("chat:conversation", conversation_id=made.pk)


@login_required
@require_http_methods(["GET", "POST"])
def edit(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    """Correct a message in place without JavaScript (GET: the form; resending is the socket's)."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    if request.method == "GET":
        return _message_page(request, conversation, message_id, "edit")
    try:
        editing.message_edit(
            user=request.user,
            conversation=conversation,
            text=request.POST.get("content", ""),
            message_id=message_id,
            resend=False,
        )
    except AppError as exc:
        if exc.code == "not_found":
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
    return redirect("chat:conversation", conversation_id=conversation.pk)


# --- pictures -------------------------------------------------------------------------------


@login_required
@require_POST
def picture_paint_again(
    request: AuthenticatedHttpRequest, conversation_id: int, message_id: int
) -> HttpResponse:
    return _picture_action(
        request, conversation_id, message_id, pictures.picture_paint_again, "image", _("Painting it again…")
    )


@login_required
@require_POST
def picture_use_as_header(
    request: AuthenticatedHttpRequest, conversation_id: int, message_id: int
) -> HttpResponse:
    return _picture_action(
        request,
        conversation_id,
        message_id,
        pictures.picture_use_as_header,
        "settings_change",
        _("That picture is the profile picture now."),
    )


@login_required
@require_POST
def picture_delete(request: AuthenticatedHttpRequest, conversation_id: int, message_id: int) -> HttpResponse:
    return _picture_action(
        request,
        conversation_id,
        message_id,
        pictures.picture_delete,
        "settings_change",
        _("Picture deleted."),
    )


def _picture_action(
    request: AuthenticatedHttpRequest,
    conversation_id: int,
    message_id: int,
    action: Callable[..., object],
    scope: str,
    done: str,
) -> HttpResponse:
    """The websocket's picture frames for the page without JavaScript: the same services."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    try:
        action(user=request.user, conversation=conversation, message_id=message_id)
    except AppError as exc:
        if exc.code == "not_found":  # not yours looks the same as not there
            raise Http404(exc.message) from exc
        if exc.code == "rate_limited":
            raise ratelimits.RateLimited(scope, exc.retry_after or 60) from exc
        if exc.code == "not_a_picture":
            return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
        messages.error(request, exc.message)  # busy, quota: something the user can wait out
    else:
        messages.success(request, done)
    return redirect("chat:conversation", conversation_id=conversation.pk)


# --- a companion's memory ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def companion_wipe(request: AuthenticatedHttpRequest, companion_id: int) -> HttpResponse:
    companion = companion_get_for_user(request.user, companion_id)
    form = WipeMemoryForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            conversations.companion_wipe_memory(
                companion=companion, clear_memories=form.cleaned_data["clear_memories"]
            )
        except AppError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, _("%(name)s's memory is wiped. Start afresh!") % {"name": companion.name}
            )
        return redirect("chat:page", companion_id=companion.pk)
    return render(request, "companions/confirm_wipe.html", {"companion": companion, "form": form})


# --- groups ---------------------------------------------------------------------------------


@login_required
@require_GET
def group_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    groups = with_last_message(conversations_for_user(request.user).filter(kind=Conversation.Kind.GROUP))
    return render(request, "chat/group_list.html", {"groups": groups})


def _save_group(
    request: AuthenticatedHttpRequest, form: GroupForm, group: Conversation | None = None
) -> Conversation | None:
    """Call the service with the form's data; its refusals become form errors."""
    data = form.cleaned_data
    fields = {
        "title": data["title"],
        "companions": data["companions"],
        "replies_per_turn": data["replies_per_turn"],
    }
    try:
        if group is None:
            return conversations.group_create(user=request.user, **fields)
        return conversations.group_update(user=request.user, group=group, **fields)
    except ValidationError as exc:
        form.add_error(None, exc)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def group_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = GroupForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid() and (group := _save_group(request, form)):
        messages.success(request, _("%(title)s is ready. Say hello to everyone.") % {"title": group.title})
        return redirect("groups:page", group_id=group.pk)
    return render(request, "chat/group_form.html", {"form": form, "group": None})


@login_required
@require_http_methods(["GET", "POST"])
def group_edit(request: AuthenticatedHttpRequest, group_id: int) -> HttpResponse:
    group = group_get_for_user(request.user, group_id)
    form = GroupForm(request.POST or None, instance=group, user=request.user)
    if request.method == "POST" and form.is_valid() and _save_group(request, form, group):
        messages.success(request, _("Group saved."))
        return redirect("groups:page", group_id=group.pk)
    return render(request, "chat/group_form.html", {"form": form, "group": group})


@login_required
@require_GET
def group_page(request: AuthenticatedHttpRequest, group_id: int) -> HttpResponse:
    return _render_conversation(request, group_get_for_user(request.user, group_id))


@login_required
@require_http_methods(["GET", "POST"])
def group_delete(request: AuthenticatedHttpRequest, group_id: int) -> HttpResponse:
    group_get_for_user(request.user, group_id)
    return delete(request, group_id)
