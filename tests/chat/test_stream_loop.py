"""The process's streaming loop: results and exceptions reach the waiting thread, a caller
that stops waiting cancels the coroutine, and a forked child starts a loop of its own."""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
import warnings

import pytest

from chat import aio_session, stream_loop


@pytest.fixture(autouse=True)
def _own_loop():
    stream_loop.shutdown()
    yield
    stream_loop.shutdown()


async def _where() -> tuple[int, str]:
    return id(asyncio.get_running_loop()), threading.current_thread().name


def test_run_returns_the_result_from_the_one_loop_thread():
    first, second = stream_loop.run(_where()), stream_loop.run(_where())
    assert first == second  # one loop, reused
    assert first[1] == "stream-loop"
    assert first[0] == id(stream_loop.current_loop())


def test_many_callers_share_the_loop():
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(stream_loop.run(add(i, 1)))) for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(1, 21))


def test_an_exception_reaches_the_caller():
    class Boom(Exception):
        pass

    async def fail() -> None:
        await asyncio.sleep(0)
        raise Boom("no")

    with pytest.raises(Boom, match="no"):
        stream_loop.run(fail())
    assert stream_loop.run(_where())[1] == "stream-loop"  # the loop goes on


def test_submit_gives_a_future():
    future = stream_loop.submit(_where())
    assert future.result(timeout=10)[1] == "stream-loop"


def test_a_timeout_cancels_the_coroutine_and_waits_for_its_cleanup():
    cleaned = threading.Event()
    started = threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # cleanup that itself waits (closing a response)
            cleaned.set()

    with pytest.raises(TimeoutError):
        stream_loop.run(wait_forever(), timeout=0.2)
    assert started.is_set() and cleaned.is_set()


def test_cancelling_a_submitted_future_cancels_the_coroutine():
    cancelled = threading.Event()
    started = threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = stream_loop.submit(wait_forever())
    assert started.wait(10)
    future.cancel()
    assert cancelled.wait(10)


def test_run_refuses_the_loop_thread_itself():
    async def nested() -> None:
        stream_loop.run(_where())

    with pytest.raises(RuntimeError, match="own thread"):
        stream_loop.run(nested())


def test_shutdown_closes_the_session_and_a_new_loop_starts_after():
    async def session_of_loop() -> aio_session.aiohttp.ClientSession:
        return aio_session.session()

    session = stream_loop.run(session_of_loop())
    stream_loop.shutdown()
    assert session.closed
    after = stream_loop.run(_where())
    assert after[1] == "stream-loop" and stream_loop.current_loop().is_running()
    assert stream_loop.run(session_of_loop()) is not session


def test_a_forked_child_starts_its_own_loop_and_the_parent_keeps_its_own():
    parent = stream_loop.run(_where())
    parent_loop = stream_loop.current_loop()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking a process with threads
        pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's teardown
        code = 1
        try:
            child = stream_loop.run(_where(), timeout=10)
            fresh = stream_loop.current_loop() is not parent_loop
            os.write(write, pickle.dumps((child[1], fresh, stream_loop.current_loop().is_running())))
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pickle.loads(report) == ("stream-loop", True, True)  # noqa: S301 -- our own child wrote it
    assert stream_loop.run(_where()) == parent  # the parent's loop is untouched
