"""A conversation to a file and a file to a conversation: the Export menu's downloads and the
"Import a chat" page. Thin: an access helper, one service call, a response."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.formats import number_format
from django.utils.http import content_disposition_header
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthenticatedHttpRequest
from chat import transcripts
from chat.forms import ChatImportForm
from chat.selectors import conversation_get_for_user
from companionhub import ratelimits
from companions.selectors import companion_get_for_user


@login_required
@require_GET
def conversation_export(request: AuthenticatedHttpRequest, conversation_id: int, fmt: str) -> HttpResponse:
    """The conversation as a download: ``jsonl`` (SillyTavern), ``md`` or ``json`` (ours)."""
    conversation = conversation_get_for_user(request.user, conversation_id)
    if fmt not in transcripts.FORMATS:
        raise Http404("No such format.")
    response = HttpResponse(transcripts.export(conversation, fmt), content_type=transcripts.FORMATS[fmt])
    filename = transcripts.export_filename(conversation, fmt)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def conversation_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the form (``?companion=<id>`` chooses one). POST: a new conversation, or the form
    again with every problem of the file, each with its line."""
    if request.method != "POST":
        chosen = request.GET.get("companion", "")
        form = ChatImportForm(user=request.user, initial={"companion": chosen if chosen.isdigit() else None})
        return render(request, "chat/import.html", {"form": form, "problems": []})
    ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
    form = ChatImportForm(request.POST, request.FILES, user=request.user)
    problems: list[str] = []
    if form.is_valid():
        chosen_id = form.cleaned_data["companion"]
        companion = companion_get_for_user(request.user, chosen_id) if chosen_id else None
        # One byte past the cap is enough for the service to say the file is too large.
        data = form.cleaned_data["file"].read(settings.CHAT_IMPORT_MAX_BYTES + 1)
        try:
            result = transcripts.conversation_import(user=request.user, data=data, companion=companion)
        except transcripts.TranscriptRejected as exc:
            form.add_error(None, exc.message)
            problems = exc.errors
        else:
            count = result.messages
            messages.success(
                request,
                ngettext(
                    "The chat is imported: %(count)s message.",
                    "The chat is imported: %(count)s messages.",
                    count,
                )
                % {"count": number_format(count, force_grouping=True)},
            )
            for notice in result.notices:
                messages.info(request, notice)
            return redirect("chat:conversation", conversation_id=result.conversation.pk)
    return render(request, "chat/import.html", {"form": form, "problems": problems})
