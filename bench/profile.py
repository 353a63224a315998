"""Where the time goes when 100 chats stream at once: ``make profile``.

Runs the pipeline benchmark's worst scenario (100 simultaneous turns at 250
tokens/s, PostgreSQL + Redis + the Procfile's workers) and reports three views
of it, so a miss in the Performance table comes with its cause:

- CPU: seconds of CPU each process used over the wall time of the load; 2 cores
  give at most 2.0 CPU-seconds per second in total;
- runs: for every run, time from ``message.send`` to ``done`` split into the
  steps' own time (``PipelineRun.step_durations``) and the rest, which is
  waiting in the broker queue between chain hops;
- stacks: py-spy samples of the chat worker and Daphne, summed per function
  (inclusive), top entries printed; the collapsed stacks are kept in
  ``var/bench/profile/`` for a flame graph (e.g. speedscope).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import services
from bench.bench_pipeline import TOKENS, make_accounts, run_load, summarize
from bench.stats import percentile
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.site import run_site, site_env

CHATS = 100
RATE = 250
TOP = 12
SAMPLE_RATE = 20  # per second; at 100 py-spy took 0.7 of the 2 cores and became the load
OUR_CODE = ("accounts/", "chat/", "companions/", "companionhub/", "media/")  # as py-spy shortens paths

RUN_SPLIT = """
import json
from chat.models import PipelineRun
rows = []
for run in PipelineRun.objects.filter(status="completed").order_by("created_at"):
    rows.append({
        "wall_ms": (run.finished_at - run.created_at).total_seconds() * 1000,
        "steps_ms": sum(run.step_durations.values()),
        "queued_ms": (run.started_at - run.created_at).total_seconds() * 1000,
        "steps": run.step_durations,
    })
print(json.dumps(rows))
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_name(name: str) -> float:
    """CPU time of every process called ``name`` (PostgreSQL's backends, redis-server)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    total += cpu_seconds(int(pid))
        except OSError:  # exited meanwhile
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def sample_cpu(processes: dict[str, int], groups: dict[str, list[int]]) -> dict[str, float]:
    sample = {name: cpu_seconds(pid) for name, pid in processes.items()}
    sample.update({name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()})
    sample["postgresql"] = cpu_seconds_by_name("postgres")
    sample["redis"] = cpu_seconds_by_name("redis-server")
    sample["whole machine"] = machine_busy_seconds()
    return sample


def _frame(frame: str) -> tuple[str, str]:
    """py-spy's "function (path/to/file.py:12)" as (function, path:line)."""
    name, _, where = frame.partition(" (")
    return name, where.rstrip(")")


def top_functions(collapsed: Path, top: int) -> tuple[list, list]:
    """From py-spy's collapsed stacks: where samples end (self), and the share of
    samples inside each of our own functions (inclusive, third-party frames left out)."""
    leaf: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():  # a frame name with a newline in it splits a line
            continue
        samples = int(count)
        total += samples
        frames = [_frame(f) for f in stack.split(";")]
        name, where = frames[-1]
        leaf[f"{name} ({Path(where).name})"] += samples
        own = {f"{name} ({where.rsplit(':', 1)[0]})" for name, where in frames if where.startswith(OUR_CODE)}
        for frame in own:
            ours[frame] += samples
    if not total:
        return [], []
    share = lambda counter: [(round(100 * n / total, 1), f) for f, n in counter.most_common(top)]  # noqa: E731
    return share(leaf), share(ours)


def main() -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed (it is in requirements-dev.txt: make install)")
        return 1
    problem = services.prepare()
    if problem:
        print(f"needs PostgreSQL and Redis: {problem}")
        return 1
    var = services.bench_dir("profile")
    with FakeLLMServer() as llm:
        llm.reply_tokens = [f"word{i} " for i in range(TOKENS)]
        env = site_env(
            {
                "LLM_BASE_URL": llm.base_url,
                "LLM_MODEL": "fake-model",
                "RATELIMIT_ENABLE": "False",
                **services.service_env(),
            },
            var_dir=var,
        )
        with services.logged_site(run_site, env, var, workers=services.PROCFILE_WORKERS) as site:
            accounts = make_accounts(site, CHATS)
            llm.token_delay = 1 / RATE
            asyncio.run(run_load(site.ws_url, accounts, 1, llm))  # warm up
            site.manage(
                "shell", "-c", "from chat.models import PipelineRun; PipelineRun.objects.all().delete()"
            )
            processes = {"daphne": site.server.pid, "load + fake LLM": os.getpid()}
            chat_workers = [w.pid for w in site.workers[: services.CHAT_WORKERS]]
            watched = {"daphne": site.server.pid, "chat worker": chat_workers[0]}  # py-spy: the first
            spies = {
                name: subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(watched[name]),
                        "--rate",
                        str(SAMPLE_RATE),
                        "--nonblocking",
                        "--format",
                        "raw",
                        "--output",
                        str(var / f"{name.replace(' ', '-')}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name in watched
            }
            time.sleep(1)
            groups = {
                f"chat workers ({len(chat_workers)})": chat_workers,
                "py-spy (profiler)": [p.pid for p in spies.values()],
            }
            before = sample_cpu(processes, groups)
            results, elapsed = asyncio.run(run_load(site.ws_url, accounts, CHATS, llm))
            after = sample_cpu(processes, groups)
            for process in spies.values():
                process.send_signal(2)  # SIGINT: py-spy writes its output and exits
                process.wait(timeout=60)
            runs = json.loads(site.manage("shell", "-c", RUN_SPLIT).strip().splitlines()[-1])

    row = summarize("redis", RATE, CHATS, results, elapsed)
    print(
        f"{CHATS} chats at {RATE} tok/s: {row['turns']} turns in {elapsed:.1f} s, errors {row['errors']}, "
        f"added delay p99 {row['added_delay_p99_ms']} ms, turn overhead p50 {row['turn_overhead_p50_ms']} ms"
    )
    print(f"\nCPU over {elapsed:.1f} s of load ({os.cpu_count()} cores):")
    for name in before:
        used = after[name] - before[name]
        print(f"  {name:16} {used:6.1f} s  = {used / elapsed:.2f} cores")
    if runs:
        wall = [r["wall_ms"] for r in runs]
        steps = [r["steps_ms"] for r in runs]
        waiting = [r["wall_ms"] - r["steps_ms"] for r in runs]
        first = [r["queued_ms"] for r in runs]
        print(f"\nRuns ({len(runs)}), ms:      p50       p99")
        for label, values in (
            ("send to done", wall),
            ("steps working", steps),
            ("waiting in queues", waiting),
            ("  before the first step", first),
        ):
            print(f"  {label:24} {statistics.median(values):8.0f}  {percentile(values, 99):8.0f}")
        per_step = collections.defaultdict(list)
        for r in runs:
            for step, ms in r["steps"].items():
                per_step[step].append(ms)
        print("  per step p50: " + ", ".join(f"{s} {statistics.median(v):.0f}" for s, v in per_step.items()))
    for name in spies:
        path = var / f"{name.replace(' ', '-')}.txt"
        if not path.exists():
            continue
        leaf, ours = top_functions(path, TOP)
        print(f"\n{name}: py-spy samples, stacks in {path.relative_to(services.ROOT)}")
        print("  where the samples end (self):")
        for share, frame in leaf:
            print(f"    {share:5.1f}%  {frame}")
        print("  inside our functions (inclusive):")
        for share, frame in ours:
            print(f"    {share:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
