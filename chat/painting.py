"""What the image step paints with: the companion's seed and reference, and progress reports.

Kept apart from ``chat.pipeline`` so the step itself stays a few lines: the
pipeline builds the base request (size, steps, sampler) and this adds what
makes one companion's pictures alike, or what a "paint again" asked for.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import structlog

from chat import events, steps
from chat.images import ImageRequest
from chat.replies import ReplyWriter
from companions.models import Companion
from companions.selectors import companion_header_bytes

log = structlog.get_logger(__name__)

# img2img: how far a picture may move from the header (lower keeps more of the face and pose).
REFERENCE_STRENGTH = 0.6
# Progress events are a nicety: at most this often (a sampler reports every step).
PROGRESS_EVERY_SECONDS = 0.5


def repaint_of(analysis: dict) -> dict | None:
    """The "paint again" order a run carries, if it is one (``chat.pictures.picture_paint_again``)."""
    order = analysis.get("repaint")
    return order if isinstance(order, dict) else None


def request_for(companion: Companion, base: ImageRequest, *, repaint: dict | None = None) -> ImageRequest:
    """``base`` with the companion's seed, or a repaint's new one, and its header as the reference.

    A header whose file is gone paints without a reference rather than not at all.
    """
    seed = int(repaint["seed"]) if repaint else companion.image_seed
    reference = companion_header_bytes(companion) if companion.use_header_as_reference else None
    return dataclasses.replace(
        base,
        seed=seed,
        reference_image=reference or None,
        reference_strength=REFERENCE_STRENGTH,
    )


class ProgressReporter:
    """``on_progress`` for the image clients: sends ``progress`` events with the picture's percent.

    A client may call it from its own thread (SD WebUI polls on one), so every
    report opens its own publisher instead of sharing the step's event loop.
    """

    def __init__(self, conversation: ReplyWriter, run_id: str) -> None:
        self.conversation = conversation
        self.run_id = run_id
        self.last_sent_at = 0.0
        self.last_percent = -1
        self._lock = threading.Lock()

    def __call__(self, percent: int) -> None:
        percent = min(max(int(percent), 0), 99)
        now = time.monotonic()
        with self._lock:
            if percent <= self.last_percent:
                return
            if now - self.last_sent_at < PROGRESS_EVERY_SECONDS and percent < 99:
                return
            self.last_percent, self.last_sent_at = percent, now
        value = steps.get("generate_image").within(percent / 100)  # the run's progress
        with self.conversation.publisher() as publisher:
            publisher.send(events.progress(self.run_id, value, "generate_image", percent=percent))
