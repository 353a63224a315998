"""Registration, login and profile forms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, UserCreationForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import signin
from accounts.models import User

if TYPE_CHECKING:  # a development-only package: the annotation is never evaluated
    from django_stubs_ext import StrOrPromise


def _clean_email(form: forms.ModelForm, email: str) -> str:
    email = email.strip()
    taken = User.objects.filter(email__iexact=email)
    if form.instance.pk:
        taken = taken.exclude(pk=form.instance.pk)
    if taken.exists():
        raise forms.ValidationError(_("An account with that email already exists."), code="email_taken")
    return email


class RegistrationForm(UserCreationForm):
    usable_password = None  # the admin's "set unusable password" switch has no place here

    class Meta:
        model = User
        fields = ("username", "email", "display_name")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})
        self.fields["email"].widget.attrs.update({"autocomplete": "email"})
        self.fields["password1"].help_text = _("At least 8 characters, not a common or all-digit password.")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip().lower()
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError(_("That username is taken."), code="username_taken")
        return username

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        label=_("Username or email"),
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        # One message for "no such account" and "wrong password".
        "invalid_login": _("That username/email and password do not match an account."),
        "inactive": _("This account is inactive."),
    }

    def clean(self) -> dict[str, Any]:
        """Count the attempt per address + account and per account, then authenticate.

        The counters are keyed by the account the name resolves to (see
        accounts.signin); they run for names with no account too, so being
        limited says nothing about whether an account exists.
        """
        lockout = signin.login_attempt_check(request=self.request, identifier=self.data.get("username") or "")
        try:
            return super().clean()
        except forms.ValidationError:
            signin.login_failure_count(lockout)
            raise


class AdminLoginForm(LoginForm, AdminAuthenticationForm):
    """The admin's sign-in: the same limits and lockout as the site's, then staff only.

    Django's admin signs in with a form of its own; without this it counted
    nothing, and a guesser could try passwords of staff accounts there without end.
    """


# The user's voice preferences: how read-aloud replies behave for this account.
VOICE_PREFERENCES = ("read_aloud", "voice_actions")


class ProfileForm(forms.ModelForm):
    # Declared rather than listed in Meta.fields: a form posted without them (an older page, a
    # script) leaves them as they are instead of failing or switching reading aloud off.
    read_aloud = forms.BooleanField(
        label=_("Read replies aloud"),
        required=False,
        initial=True,
        help_text=_(
            "Replies of companions with a voice are spoken as they are written. "
            "The Listen button on every reply works either way."
        ),
    )
    voice_actions = forms.ChoiceField(
        label=_("Actions in *asterisks*"),
        choices=User.VoiceActions.choices,
        initial="skip",
        required=False,  # a form posted without it (an older page, a script) changes nothing
        widget=forms.RadioSelect,
        help_text=_("What the voice does with the parts of a reply written between asterisks."),
    )

    class Meta:
        model = User
        fields = ("display_name", "email", "appearance", "language")
        widgets = {"appearance": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The blank choice is a real choice here, not "pick one".
        language = cast(forms.ChoiceField, self.fields["language"])
        language.choices = [("", _("Follow my browser")), *settings.LANGUAGES]
        for name in VOICE_PREFERENCES:
            self.fields[name].initial = getattr(self.instance, name)

    def save(self, commit: bool = True) -> User:
        for name in VOICE_PREFERENCES:
            value = self.cleaned_data.get(name)
            if value not in (None, ""):
                setattr(self.instance, name, value)
        return super().save(commit=commit)

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])

    def names_another_email(self) -> bool:
        """Does the posted email differ from the account's own (so the answer says if it is taken)?"""
        posted = (self.data.get("email") or "").strip()
        return bool(posted) and posted.lower() != (self.instance.email or "").lower()


class PasswordAgainForm(forms.Form):
    """The password asked again of a signed-in user, before something a stolen session must not do.

    Counted like a failed sign-in when wrong (and refused when those are used
    up): not a free password oracle.
    """

    why_asked: StrOrPromise = ""  # a lazy translation in the subclasses
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(
        self, *args: Any, user: User | None = None, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.request = request
        self.fields["password"].help_text = self.why_asked

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if self.user is None or not signin.password_verify(
            request=self.request, user=self.user, password=password
        ):
            raise forms.ValidationError(_("That is not your password."), code="password_incorrect")
        return password


class ApiTokenForm(PasswordAgainForm):
    field_order = ["name", "password"]
    name = forms.CharField(
        max_length=50,
        strip=True,
        label=_("Name"),
        help_text=_("What the token is for, e.g. “my laptop script”. You see the token itself only once."),
    )
    # A token chats as you without a session and outlives a stolen one: the password again.
    why_asked = _("Asked again because a token can act as you from anywhere until you revoke it.")


class AccountDeleteForm(PasswordAgainForm):
    """Deleting an account cannot be undone: whoever holds the session must also know the password."""

    why_asked = _("Asked again because deleting your account cannot be undone.")


class PasswordChangeWithTokensForm(PasswordChangeForm):
    """Django's password change, counted like a sign-in, and a plain choice about API tokens."""

    keep_api_tokens = forms.BooleanField(
        label=_("Keep my API tokens working"),
        required=False,
        initial=False,
    )

    def __init__(
        self,
        user: User,
        *args: Any,
        request: HttpRequest | None = None,
        active_tokens: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request
        if not active_tokens:
            del self.fields["keep_api_tokens"]  # nothing to keep: no question to answer
            return
        self.fields["keep_api_tokens"].help_text = ngettext(
            "You have %(count)s API token. Left unticked, it stops working now and programs using it "
            "are disconnected; you can make new ones on your profile page. Ticked, it keeps working "
            "(programs connected right now reconnect once): tick it only if you are sure nobody else has it.",
            "You have %(count)s API tokens. Left unticked, they stop working now and programs using them "
            "are disconnected; you can make new ones on your profile page. Ticked, they keep working "
            "(programs connected right now reconnect once): tick it only if you are sure nobody else "
            "has one of them.",
            active_tokens,
        ) % {"count": active_tokens}

    def clean_old_password(self) -> str:
        old_password = self.cleaned_data["old_password"]
        if not signin.password_verify(request=self.request, user=self.user, password=old_password):
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password
