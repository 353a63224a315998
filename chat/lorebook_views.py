"""A conversation's lorebooks page: which of the owner's books apply to every speaker of the chat."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.http import AuthenticatedHttpRequest
from chat import conversations
from chat.selectors import conversation_get_for_user, conversation_members
from lorebooks.forms import LorebookChoiceForm


@login_required
@require_http_methods(["GET", "POST"])
def conversation_lorebooks(request: AuthenticatedHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_get_for_user(request.user, conversation_id)
    initial = {"lorebooks": list(conversation.lorebooks.all())}
    data = request.POST if request.method == "POST" else None  # nothing ticked is a choice too
    form = LorebookChoiceForm(data, owner=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        books = form.cleaned_data["lorebooks"]
        conversations.conversation_set_lorebooks(conversation=conversation, lorebooks=books)
        messages.success(request, _("The chat's lorebooks are saved."))
        return redirect("chat:conversation", conversation_id=conversation.pk)
    members = conversation_members(conversation)
    return render(
        request, "chat/lorebooks.html", {"conversation": conversation, "form": form, "members": members}
    )
