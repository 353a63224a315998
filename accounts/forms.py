"""Registration, login and profile forms."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts import signin
from accounts.models import User


def _clean_email(form: forms.ModelForm, email: str) -> str:
    email = email.strip()
    taken = User.objects.filter(email__iexact=email)
    if form.instance.pk:
        taken = taken.exclude(pk=form.instance.pk)
    if taken.exists():
        raise forms.ValidationError("An account with that email already exists.", code="email_taken")
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
        self.fields["password1"].help_text = "At least 8 characters, not a common or all-digit password."

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip().lower()
        if User.objects.filter(username=username).exists():
            raise forms.ValidationError("That username is taken.", code="username_taken")
        return username

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])


class LoginForm(AuthenticationForm):
    username = forms.CharField(
        label="Username or email",
        max_length=254,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        # One message for "no such account" and "wrong password".
        "invalid_login": "That username/email and password do not match an account.",
        "inactive": "This account is inactive.",
    }

    def clean(self):
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


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("display_name", "email", "appearance")
        widgets = {"appearance": forms.Textarea(attrs={"rows": 2})}

    def clean_email(self) -> str:
        return _clean_email(self, self.cleaned_data["email"])


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=50,
        strip=True,
        help_text="What the token is for, e.g. “my laptop script”. You see the token itself only once.",
    )
