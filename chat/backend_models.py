"""Back ends as data: connections, sampler presets and each companion's choice.

Imported by ``chat.models`` so Django registers them with the chat app. The
per-companion choice is a chat row pointing at the companion (not a field on
``Companion``): companions sits below chat and never imports it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from companionhub import secretbox


class Connection(models.Model):
    """One server the site talks to: an LLM, an image or an audio (speech) back end.

    ``api_key_sealed`` holds the key encrypted (``companionhub.secretbox``); the
    plaintext exists only in memory, in the client built from the row. Probe
    fields are written with ``update()``, which leaves ``updated_at`` alone, so
    a health probe never invalidates the cached clients (keyed by id and
    ``updated_at``).
    """

    class Kind(models.TextChoices):
        LLM = "llm", "LLM"
        IMAGE = "image", "Images"
        AUDIO = "audio", "Speech (text to speech)"
        # Its own kind: speech and transcription are often different servers (Kokoro and whisper.cpp).
        TRANSCRIPTION = "stt", "Speech to text"

    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    provider = models.CharField(max_length=40, help_text="Which client speaks to it (the registry's name).")
    base_url = models.CharField(max_length=300, blank=True, help_text="Blank: the provider's own address.")
    api_key_sealed = models.TextField(blank=True, editable=False)
    default_model = models.CharField(max_length=200, blank=True)
    # The model ``/v1/embeddings`` is asked for (memory retrieval); blank: LLM_EMBEDDING_MODEL,
    # else ``default_model`` (llama-server serves both from one model when started with --embeddings).
    embedding_model = models.CharField(
        max_length=200, blank=True, help_text="Blank: LLM_EMBEDDING_MODEL, else the default model."
    )
    context_length = models.PositiveIntegerField(
        default=8192, validators=[MinValueValidator(512), MaxValueValidator(2_000_000)]
    )
    connect_timeout = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(60)]
    )
    read_timeout = models.FloatField(
        default=60.0, validators=[MinValueValidator(0.1), MaxValueValidator(900)]
    )
    # An audio connection's voice for companions that chose none (TTS_VOICE); other kinds leave it blank.
    default_voice = models.CharField(
        max_length=100, blank=True, help_text="Audio: the voice used by default."
    )
    # A ComfyUI connection's workflow graph (API format); other kinds leave it empty.
    workflow = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # The connection a companion uses when it has chosen none; at most one per kind.
    is_default = models.BooleanField(default=False)
    # Created and kept in step by the environment variables (LLM_BASE_URL, SD_API_URL, ...).
    from_env = models.BooleanField(default=False, editable=False)
    # The server's model names from GET {base_url}/models, and when they were fetched.
    models_list = models.JSONField(default=list, blank=True, editable=False)
    models_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_probe_ok = models.BooleanField(null=True, editable=False)
    last_probe_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_probe_error = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_default=True), name="connection_one_default_per_kind"
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(from_env=True), name="connection_one_env_row_per_kind"
            ),
        ]
        permissions = [("fetch_connection_models", "Can fetch a connection's model list from its server")]

    def __str__(self) -> str:  # never the key
        return f"{self.name} ({self.get_kind_display()}, {self.provider})"

    def __repr__(self) -> str:  # never the key, even in a traceback's locals
        return f"<Connection {self.pk} {self.name!r} {self.kind}/{self.provider}>"

    @property
    def api_key(self) -> str:
        return secretbox.unseal(self.api_key_sealed)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_sealed)

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_sealed = secretbox.seal(plaintext)


class SamplerPreset(models.Model):
    """Sampler settings a companion can use. Blank fields are not sent at all.

    ``owner`` empty: a shared preset, made by moderators; otherwise the user's
    own (imported on their model page), seen by nobody else.
    """

    name = models.CharField(max_length=80)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    top_p = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    min_p = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    top_k = models.PositiveIntegerField(null=True, blank=True, validators=[MaxValueValidator(1000)])
    repetition_penalty = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(3.0)]
    )
    frequency_penalty = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)]
    )
    presence_penalty = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-2.0), MaxValueValidator(2.0)]
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(16), MaxValueValidator(4000)]
    )
    stop = models.JSONField(default=list, blank=True, help_text="Up to four stop strings.")
    source = models.CharField(max_length=20, blank=True, editable=False)  # "sillytavern" when imported
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["owner", "name"], name="preset_owner_name")]

    def __str__(self) -> str:
        return self.name if self.owner_id is None else f"{self.name} (own)"


class CompanionBackend(models.Model):
    """A companion's choice of connection, model and preset; absent or blank: the defaults."""

    companion = models.OneToOneField("companions.Companion", on_delete=models.CASCADE, related_name="+")
    llm_connection = models.ForeignKey(
        Connection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": Connection.Kind.LLM},
    )
    model = models.CharField(max_length=200, blank=True)
    preset = models.ForeignKey(
        SamplerPreset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    image_connection = models.ForeignKey(
        Connection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": Connection.Kind.IMAGE},
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"back end of companion {self.companion_id}"
