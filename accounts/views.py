"""Sign up, sign in, sign out, profile."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language

from accounts import language, services, signin, tokens, usage
from accounts.forms import (
    AccountDeleteForm,
    ApiTokenForm,
    LoginForm,
    PasswordChangeWithTokensForm,
    ProfileForm,
    RegistrationForm,
)
from accounts.http import AuthenticatedHttpRequest
from companionhub import ratelimits
from companionhub.branding import SITE_NAME


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST":
        ip = ratelimits.request_ip(request)
        ratelimits.enforce("register", f"ip:{ip}", record_label=ip)
    if request.method == "POST" and form.is_valid():
        user = services.user_register(request=request, form=form)
        messages.success(
            request, _("Welcome to CompanionHub, %(name)s!") % {"name": user.name_for_companions}
        )
        # A new account has no companion yet: straight to making the first one.
        response = redirect("companions:start")
        signin.device_cookie_set(response, request=request, user=user)
        return response
    return render(request, "accounts/register.html", {"form": form})


class BrandedMixin:
    """Django's auth views set ``site_name`` (and ``site``) to the request's host, which would
    put "127.0.0.1:8000" in the title, header and footer: every page says the product's name."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)  # type: ignore[misc]
        context["site_name"] = SITE_NAME
        return context


class LoginView(BrandedMixin, auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        # This browser now knows the account: another's failures no longer lock it out (accounts.signin).
        signin.device_cookie_set(response, request=self.request, user=form.get_user())
        return response


class LogoutView(BrandedMixin, auth_views.LogoutView):
    """POST only (Django's default): a link or an image tag cannot sign anyone out."""


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST":
        ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
        if form.names_another_email():
            # The answer says whether an address has an account, as registration's does:
            # it costs what a registration costs (docs/security.md, threat model).
            ip = ratelimits.request_ip(request)
            ratelimits.enforce("register", f"ip:{ip}", record_label=ip)
    if request.method == "POST" and form.is_valid():
        user = services.user_update_profile(form=form)
        if user.language:
            translation.activate(user.language)  # the message below already in the new language
        messages.success(request, _("Your profile is saved."))
        response = redirect("accounts:profile")
        if user.language:  # the browser keeps the choice after signing out
            language.cookie_set(response, user.language)
        return response
    return _render_profile(request, form=form)


def _render_profile(request: AuthenticatedHttpRequest, **context: object) -> HttpResponse:
    context.setdefault("form", ProfileForm(instance=request.user))
    context.setdefault("token_form", ApiTokenForm())
    context["api_tokens"] = tokens.tokens_for_user(request.user)
    context["usage"] = usage.usage_summary(request.user)
    context["usage_bars"], context["usage_chart_width"] = usage.usage_chart(usage.usage_per_day(request.user))
    return render(request, "accounts/profile.html", context)


@login_required
@require_POST
def token_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Create a personal API token and show its secret this once (never stored, never redirected)."""
    ratelimits.enforce("token_create", f"user:{request.user.pk}", record_label=request.user.username)
    form = ApiTokenForm(request.POST, user=request.user, request=request)
    if form.is_valid():
        try:
            token, secret = tokens.token_create(user=request.user, name=form.cleaned_data["name"])
        except tokens.TokenLimitReached as exc:
            form.add_error(None, str(exc))
        else:
            response = _render_profile(request, new_token=token, new_secret=secret)
            response["Cache-Control"] = "no-store"
            return response
    return _render_profile(request, token_form=form)


@login_required
@require_POST
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    if not tokens.token_revoke(user=request.user, token_id=token_id):
        raise Http404("No such token.")
    messages.success(request, _("Token revoked. Programs using it are disconnected."))
    return redirect("accounts:profile")


class PasswordChangeView(BrandedMixin, auth_views.PasswordChangeView):
    form_class = PasswordChangeWithTokensForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")
    request: AuthenticatedHttpRequest  # the view is login_required (Django's)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(request=self.request, active_tokens=tokens.active_token_count(self.request.user))
        return kwargs

    def form_valid(self, form):
        response = super().form_valid(form)
        outcome = services.user_password_changed(
            user=form.user, keep_api_tokens=form.cleaned_data.get("keep_api_tokens", False)
        )
        messages.success(self.request, _password_changed_message(outcome))
        return response


def _password_changed_message(outcome: services.PasswordChangeOutcome) -> str:
    """Say what happened to the API tokens, not what the user might assume."""
    if outcome.tokens_revoked:
        n = outcome.tokens_revoked
        return ngettext(
            "Your password is changed. Other devices are signed out and your %(count)s API token revoked.",
            "Your password is changed. Other devices are signed out and your %(count)s API tokens revoked.",
            n,
        ) % {"count": n}
    if outcome.tokens_kept:
        n = outcome.tokens_kept
        return ngettext(
            "Your password is changed. Other devices are signed out; your %(count)s API token still works.",
            "Your password is changed. Other devices are signed out; your %(count)s API tokens still work.",
            n,
        ) % {"count": n}
    return _("Your password is changed. Other devices are signed out.")


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Delete the account and everything in it, once the password is typed again."""
    form = AccountDeleteForm(request.POST or None, user=request.user, request=request)
    if request.method == "POST" and form.is_valid():
        services.user_delete(user=request.user)
        logout(request)  # this browser's session is gone already; this clears its cookie too
        messages.success(request, _("Your account is deleted, with everything that was in it."))
        return redirect("home")
    return render(request, "accounts/account_delete.html", {"form": form})


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The language switcher: Django's ``set_language`` (the cookie), and for a signed-in user the
    saved choice too, so it follows them to other browsers and to the websocket."""
    response = set_language(request)
    chosen = request.POST.get("language", "")
    if request.user.is_authenticated and language.supported(chosen):
        ratelimits.enforce("settings_change", f"user:{request.user.pk}", record_label=request.user.username)
        services.user_set_language(user=request.user, language=chosen)
    return response
