"""Turns already under way are served before new ones (task priorities on the Redis broker)."""

from __future__ import annotations

import uuid

from kombu import Connection

from companionhub.celery import app

PIPELINE = [
    "chat.analyze_context",
    "chat.generate_reply",
    "chat.reanalyze",
    "chat.update_state",
    "chat.finish",
]


def routed_priority(task_name: str) -> int:
    return app.amqp.router.route({}, task_name)["priority"]


def test_each_later_step_of_a_turn_goes_before_the_steps_that_start_one():
    priorities = [routed_priority(name) for name in PIPELINE]
    # Redis serves 0 first; a new turn (analysis) waits for replies being written,
    # which wait for turns that only have their state left to save.
    assert priorities[0] > priorities[1] > priorities[2]
    assert priorities[2:] == [0, 0, 0]
    assert routed_priority("chat.generate_image") == 0


def test_routes_keep_every_chat_step_on_the_chat_queue(settings):
    for name in PIPELINE:
        assert app.amqp.router.route({}, name)["queue"].name == settings.CELERY_TASK_DEFAULT_QUEUE
    assert app.amqp.router.route({}, "chat.generate_image")["queue"].name == "images"


def test_redis_hands_out_a_finishing_step_before_a_new_turn_queued_earlier(redis_url):
    """The numbers must fall in different priority steps of the Redis transport, or nothing reorders."""
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue(f"priority-test-{uuid.uuid4().hex}")
        try:
            for name in ("chat.analyze_context", "chat.generate_reply", "chat.finish"):
                queue.put({"task": name}, priority=routed_priority(name))
            served = []
            for _ in range(3):
                message = queue.get(timeout=5)
                served.append(message.payload["task"])
                message.ack()
        finally:
            queue.queue.delete()
            queue.close()
    assert served == ["chat.finish", "chat.generate_reply", "chat.analyze_context"]
