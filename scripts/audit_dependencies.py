"""Audit the pinned requirements for known vulnerabilities (`make audit`, run by CI).

pip-audit looks every pin up in a vulnerability database. When that database
cannot be reached (an offline build machine, an outage), pip-audit still exits
0 and prints "No known vulnerabilities found" after skipping every package,
which would read as a clean bill of health. So this script reads pip-audit's
JSON report itself and tells three outcomes apart:

* a known vulnerability in a pin: list them and fail (exit 1);
* every pin looked up, none vulnerable: say so (exit 0);
* some or all pins could not be looked up: say plainly that the vulnerability
  source was unreachable, and compare those pins with the newest release the
  package index offers instead, so the build still shows how far behind each
  pin is (exit 0: an unreachable database is not a reason to block a build).

`--compare-only` skips pip-audit and prints the comparison for every pin
(`make upgrade-check`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT_FILES = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
AUDIT_TIMEOUT = 600  # seconds for the whole pip-audit run
LOOKUP_TIMEOUT = 60  # seconds for one package-index look-up

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


@dataclass(frozen=True, slots=True)
class Pin:
    name: str
    version: str


def read_pins(paths: tuple[Path, ...] = REQUIREMENT_FILES) -> list[Pin]:
    """Every `name==version` line of the requirement files (extras dropped), once each."""
    pins: dict[str, Pin] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = _PIN.match(line)
            if match:
                name = match.group(1)
                pins.setdefault(_normalise(name), Pin(name=name, version=match.group(3)))
    return list(pins.values())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_pip_audit() -> dict | None:
    """pip-audit's JSON report, or None when pip-audit itself could not run to the end."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner=off"]
        for path in REQUIREMENT_FILES:
            command += ["-r", str(path)]
        command += ["--format=json", f"--output={report}"]
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=AUDIT_TIMEOUT, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            return None
        if not report.exists():
            return None
        return json.loads(report.read_text())


def latest_version(name: str) -> str | None:
    """The newest release the configured package index offers, or None if it cannot say."""
    try:
        result = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "index", "versions", name],
            capture_output=True,
            text=True,
            timeout=LOOKUP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    match = re.search(r"\(([^)]+)\)", result.stdout.splitlines()[0]) if result.stdout else None
    return match.group(1) if match else None


def compare_with_latest(pins: list[Pin]) -> None:
    width = max((len(pin.name) for pin in pins), default=4)
    print(f"{'package':<{width}}  {'pinned':<12}  latest")
    behind = 0
    for pin in pins:
        latest = latest_version(pin.name)
        if latest is None:
            note = "(index did not answer)"
        elif latest != pin.version:
            note = "newer release available"
            behind += 1
        else:
            note = ""
        print(f"{pin.name:<{width}}  {pin.version:<12}  {latest or '?':<12}  {note}".rstrip())
    print(f"{behind} of {len(pins)} pins have a newer release.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compare-only", action="store_true", help="only compare pins with the latest releases"
    )
    args = parser.parse_args(argv)
    pins = read_pins()

    if args.compare_only:
        compare_with_latest(pins)
        return 0

    report = run_pip_audit()
    if report is None:
        print("Dependency audit: pip-audit could not reach its vulnerability source (or did not finish).")
        print("Comparing the pins with the latest releases instead; this does not fail the build.\n")
        compare_with_latest(pins)
        return 0

    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = {_normalise(d["name"]) for d in dependencies if d.get("skip_reason")}
    audited = len(dependencies) - len(skipped)

    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            print(f"VULNERABLE {dep['name']} {dep.get('version', '')}: {vuln['id']} (fixed in: {fixes})")
    if skipped:
        print(
            f"Dependency audit: the vulnerability source could not be reached for {len(skipped)} of "
            f"{len(dependencies)} pins; comparing those with the latest releases instead.\n"
        )
        compare_with_latest([pin for pin in pins if _normalise(pin.name) in skipped])
    if vulnerable:
        print(f"\n{len(vulnerable)} pinned package(s) have known vulnerabilities: upgrade them.")
        return 1
    if audited:
        print(f"Dependency audit: {audited} pins looked up, no known vulnerabilities.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
