"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench images pipeline``."""

from __future__ import annotations

import importlib
import os
import sys

import django

BENCHES = ("images", "pipeline")


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companionhub.settings")
    django.setup()
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"\n== {name}")
        module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
