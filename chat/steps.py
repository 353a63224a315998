"""The steps of a chat turn, each declared once.

A step is a function of ``chat.pipeline`` run by a Celery task of ``chat.tasks``.
Everything else about it is declared here, and what needs it reads it from
this registry:

* the chain: its steps run in the order of ``STEPS`` (``chat.tasks``); a
  ``picture`` step runs only when the turn wants a picture, after the others;
* its task's queue and priority: Celery asks ``route_task`` for every task it
  sends (``CELERY_TASK_ROUTES`` in settings names it);
* the run's progress: a step reports its band's start when it claims the run,
  points inside the band while it works, and its end when it is done
  (``chat.pipeline``); ``finish`` reports ``DONE_PROGRESS``;
* the step-duration histogram of ``/metrics`` (``chat.apps`` registers the
  names with ``companionhub.metrics``, which imports no app);
* what the chat page shows while the step runs (``{% step_labels %}`` of the
  ``chat_steps`` template library).

An optional step's failure is reported and the turn goes on; a required
step's failure fails the run (``chat.tasks`` does each).

After-steps (``AFTER_STEPS``) are the memory work a finished reply leaves: the
rolling summary of the conversation (``chat.summaries``) and the facts the
companion remembers (``chat.memory_steps``). ``finish`` sends them once the run
is completed and its ``done`` event is out, on the ``memory`` queue with a
worker of its own, so they never delay a reply. They are not part of the reply
chain, report no progress, and are always optional: a failure is logged and
never touches the reply or the run's status. A cancelled or failed run sends
none. Their durations go to the same ``/metrics`` histogram, under their names.

Stream steps (``STREAM_STEPS``) are sent by a step while it works, one task per piece:
``generate_reply`` sends ``speak`` for each sentence of the reply as soon as it is complete
(``chat.voice``), on the ``voice`` queue with a worker of its own, so speech starts while the
reply still streams and never slows it. Optional like the after-steps: a failure costs the
voice of the rest of that reply (one note to the user), never the reply.

Adding a step is one entry in ``STEPS``, where it is to run; one function of
``chat.pipeline`` named as the step; one task in ``chat.tasks`` named as the
entry's ``task``. A step every turn runs goes before ``update_state``, which
sends what follows it; a step on a queue of its own also needs a worker that
reads that queue (Procfile, docker-compose.yml, the Makefile's ``worker``;
the embedded worker reads every routed queue by itself). Adding an after-step
is one entry in ``AFTER_STEPS`` and one task in ``chat.tasks`` that calls its
module's function of the run id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Signature, chain, current_app
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:  # a development-only package: the annotations below are strings
    from django_stubs_ext import StrOrPromise

# A step's queue is the chat queue, or a queue of its own for slow work. The chat queue is
# Celery's default queue (CELERY_CHAT_QUEUE names it, so that several sites can share one
# Redis); ``CHAT`` stands for it.
CHAT = "chat"
IMAGES = "images"  # a picture takes up to minutes: its own queue and worker
MEMORY = "memory"  # the memory work after a reply: its own queue and worker, never before a reply
VOICE = "voice"  # speech of a reply's sentences, sent while it streams: its own queue and worker

# Priorities (Redis: 0 is served first). A turn already under way goes before a
# new one, so under load the replies that started finish instead of every turn
# waiting behind every other turn's next step (bench/profile.py shows the wait).
NEW_TURN, WRITING, FINISHING = 6, 3, 0
BACKGROUND = 9  # memory work: on its own queue, after whatever else waits there

DONE = "done"  # the step name of the last progress event, sent by ``finish``
DONE_PROGRESS = 100
DONE_LABEL = _("Done")


def queue_name(queue: str) -> str:
    """The broker's name of a step's queue: ``CHAT`` is the configured chat queue."""
    return current_app.conf.task_default_queue if queue == CHAT else queue


@dataclass(frozen=True)
class Route:
    """Where a task's messages go."""

    task: str
    queue: str = CHAT
    priority: int = FINISHING

    def options(self) -> dict[str, Any]:
        return {"queue": queue_name(self.queue), "priority": self.priority}


@dataclass(frozen=True)
class Step:
    name: str  # of the pipeline function, of the progress events and of the metrics
    task: str  # the Celery task's name
    band: tuple[int, int]  # the run's progress (0-100) when the step claims it, and when it is done
    label: StrOrPromise  # what the chat page shows while the step runs (in the page's language)
    queue: str = CHAT
    priority: int = FINISHING
    optional: bool = False  # a failure is reported and the turn goes on
    picture: bool = False  # runs only when the turn wants a picture, after the other steps

    @property
    def start(self) -> int:
        return self.band[0]

    @property
    def end(self) -> int:
        return self.band[1]

    @property
    def route(self) -> Route:
        return Route(self.task, self.queue, self.priority)

    def within(self, fraction: float) -> int:
        """The progress when ``fraction`` (0-1) of the step's work is done: inside the band,
        never its end, which the step reports itself when it is done."""
        span = self.end - self.start
        return self.start + min(span - 1, max(int(span * fraction), 0))


STEPS: tuple[Step, ...] = (
    Step("analyze_context", "chat.analyze_context", (10, 30), _("Reading your message…"), priority=NEW_TURN),
    Step("generate_reply", "chat.generate_reply", (30, 70), _("Writing…"), priority=WRITING),
    Step("reanalyze", "chat.reanalyze", (70, 80), _("Thinking about the scene…")),
    # Decides whether the picture steps follow, and sends them or ``finish`` itself.
    Step("update_state", "chat.update_state", (80, 85), _("Updating the scene…")),
    Step(
        "generate_image",
        "chat.generate_image",
        (85, 100),
        _("Painting a picture…"),
        queue=IMAGES,
        optional=True,
        picture=True,
    ),
)


@dataclass(frozen=True)
class AfterStep:
    """Work a completed reply leaves for later: sent by ``finish``, optional, no progress."""

    name: str  # of the step's function and of the metrics
    task: str
    queue: str = MEMORY
    priority: int = BACKGROUND

    @property
    def route(self) -> Route:
        return Route(self.task, self.queue, self.priority)


AFTER_STEPS: tuple[AfterStep, ...] = (
    AfterStep("summarize", "chat.summarize"),  # the older messages that no longer fit, summarised
    AfterStep("remember", "chat.remember"),  # durable facts of the exchange, as memories
)


@dataclass(frozen=True)
class StreamStep:
    """Work sent while a reply streams, one task per piece of it, on a queue of its own: the
    reply's tokens never wait for it. Optional, no progress; a cancelled or failed run's
    pending pieces are skipped by the task itself (``chat.voice.speak_sentence``)."""

    name: str  # of the step's function and of the metrics
    task: str
    queue: str = VOICE
    priority: int = FINISHING

    @property
    def route(self) -> Route:
        return Route(self.task, self.queue, self.priority)


# The voice: each sentence of a reply, spoken as soon as it is complete (``chat.voice``).
SPEAK = StreamStep("speak", "chat.speak")
STREAM_STEPS: tuple[StreamStep, ...] = (SPEAK,)

# Tasks that are not steps. ``finish`` ends the turn after the last step, as urgently as the
# last steps. Tasks not listed (the stuck-run sweep, other apps' tasks) go to Celery's default
# queue, which is the chat queue.
FINISH_TASK = "chat.finish"
ROUTES: tuple[Route, ...] = (Route(FINISH_TASK),)

_BY_NAME = {step.name: step for step in STEPS}
_BY_TASK = {
    route.task: route
    for route in (
        *(step.route for step in STEPS),
        *(step.route for step in AFTER_STEPS),
        *(step.route for step in STREAM_STEPS),
        *ROUTES,
    )
}


def get(name: str) -> Step:
    """The step called ``name``; ``KeyError`` if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no pipeline step is called {name!r}") from None


def names() -> tuple[str, ...]:
    """Every step's name, the after-steps' and stream steps' last: the metrics' step-duration
    histogram has one each."""
    return (*_BY_NAME, *(step.name for step in AFTER_STEPS), *(step.name for step in STREAM_STEPS))


def after_steps() -> tuple[AfterStep, ...]:
    return AFTER_STEPS


def after_turn(run_id: str) -> list[Signature]:
    """The after-steps of a completed run, each a task of its own (a slow summary does not hold
    up the memories). Named, not imported, and immutable, as the chain's."""
    return [current_app.signature(step.task, args=(run_id,), immutable=True) for step in AFTER_STEPS]


def speak_signature(
    run_id: str | None, message_id: int, index: int, text: str, *, last: bool, attempt: int
) -> Signature:
    """One sentence of a reply to speak (``SPEAK``), named, not imported, as the chain's tasks."""
    return current_app.signature(
        SPEAK.task,
        args=(run_id, message_id, index, text),
        kwargs={"last": last, "attempt": attempt},
        immutable=True,
    )


def chain_steps() -> tuple[Step, ...]:
    """The steps every turn runs, in order."""
    return tuple(step for step in STEPS if not step.picture)


def picture_steps() -> tuple[Step, ...]:
    """The steps of a turn that wants a picture, after ``chain_steps``, in order."""
    return tuple(step for step in STEPS if step.picture)


def chain_for(run_id: str, *, picture_only: bool = False) -> chain:
    """The Celery chain that runs the steps of one reply, in order (``update_state`` sends the
    picture steps or ``finish`` after it); or, after it or to paint a reply's picture again,
    the picture steps and ``finish``. Tasks are named, not imported: starting a run does not
    import the steps that end it. Signatures are immutable: a step reads only the run."""
    if picture_only:
        names = (*(step.task for step in picture_steps()), FINISH_TASK)
    else:
        names = tuple(step.task for step in chain_steps())
    return chain(*(current_app.signature(name, args=(run_id,), immutable=True) for name in names))


def labels() -> dict[str, str]:
    """What the chat page shows per progress event's step, ``DONE`` included, in the active language."""
    return {**{step.name: str(step.label) for step in STEPS}, DONE: str(DONE_LABEL)}


def route_task(name: str, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Celery's router (``CELERY_TASK_ROUTES``): the queue and priority of a chat task, None for
    any other, which Celery then sends to its default queue."""
    route = _BY_TASK.get(name)
    return route.options() if route is not None else None
