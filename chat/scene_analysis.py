"""The scene analysis: one LLM call that reads a text for the companion's outfit, location and
action. The reply steps ask it about each message (``chat.pipeline``); a card import asks it
about the card's scenario and first message (``card_starting_scene``, registered with
``companions.scene`` by chat's app config, as companions imports no chat).

Analysis is optional: whatever goes wrong (no back end, an open breaker, an error, a timeout)
keeps the current scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from chat import prompts
from chat.backends import BackendUnavailable, llm_for_companion
from chat.cancellable import call_unless_cancelled
from chat.llm import Completion, LLMError
from companionhub import step_slots
from companions.cards import fill_macros
from companions.models import Companion
from companions.scene import SceneValues

log = structlog.get_logger(__name__)

ANALYSIS_MAX_TOKENS = 200
# A card import waits at most this long (connect, read) for the scene: an import is a page
# the user waits for, and the default scene is a fine start when the back end is slow or down.
CARD_SCENE_TIMEOUT = (2.0, 8.0)
CARD_TEXT_CHARS = 1000  # of the scenario and of the first message each (the analysis reads 2,000)


@dataclass(frozen=True)
class SceneAnalysis:
    """The scene after the text, and the call's completion (None: no answer, scene unchanged)."""

    scene: prompts.SceneState
    completion: Completion | None = None


def current_scene(companion: Companion) -> prompts.SceneState:
    return prompts.SceneState(
        outfit=companion.current_outfit, location=companion.current_location, action=companion.current_action
    )


def scene_analyze(
    companion: Companion,
    *,
    text: str,
    speaker: str,
    timeout: tuple[float, float] | None = None,
    run_id: str | None = None,
) -> SceneAnalysis:
    """Ask the companion's LLM what ``text`` implies for the scene; ``timeout`` (connect, read)
    bounds the call tighter than the connection's own. With ``run_id``, a cancel of that run
    abandons the call (``chat.cancellable.Cancelled`` is raised)."""
    current = current_scene(companion)
    try:
        llm = llm_for_companion(companion.pk, with_preset=False)  # JSON at a low temperature
    except BackendUnavailable as exc:
        log.warning("analysis_failed", companion_id=companion.pk, code="unavailable", error=str(exc))
        return SceneAnalysis(current)
    breaker = llm.breaker
    if not breaker.allow():
        return SceneAnalysis(current)
    client = llm.client
    if timeout is not None and (configured := getattr(client, "configured", None)) is not None:
        client = configured(timeout=timeout)
    messages = prompts.build_analysis_messages(companion, text=text, speaker=speaker)

    def ask() -> Completion:
        return client.complete(messages, max_tokens=ANALYSIS_MAX_TOKENS, temperature=0.2)

    try:
        if run_id is None:
            with step_slots.waiting():  # the slot and the connection are others' while the LLM answers
                completion = ask()
        else:
            completion = call_unless_cancelled(run_id, ask)
    except LLMError as exc:
        breaker.record_failure()
        llm.scrub(exc)
        log.warning("analysis_failed", companion_id=companion.pk, code=exc.code, error=exc.message)
        return SceneAnalysis(current)
    breaker.record_success()
    return SceneAnalysis(prompts.extract_state(completion.text, current=current), completion)


def card_starting_scene(companion: Companion) -> SceneValues | None:
    """Where an imported character starts: its card's scenario and first message read by the
    companion's LLM. None when the card has neither, or no answer came."""
    user = companion.owner.name_for_companions
    scenario = fill_macros(prompts.card_text(companion, "scenario"), char=companion.name, user=user).strip()
    greeting = fill_macros(companion.greeting, char=companion.name, user=user).strip()
    parts = [
        f"{label}: {text[:CARD_TEXT_CHARS]}"
        for label, text in (("Scenario", scenario), ("First message", greeting))
        if text
    ]
    if not parts:
        return None
    analysis = scene_analyze(
        companion, text="\n\n".join(parts), speaker=companion.name, timeout=CARD_SCENE_TIMEOUT
    )
    if analysis.completion is None:
        return None
    scene = analysis.scene
    return {"outfit": scene.outfit, "location": scene.location, "action": scene.action}
