"""``python -m benchmarks [NAME ...] [OPTIONS]``: run benchmarks, then rebuild BENCHMARKS.md.

With no name every benchmark runs (``make bench``); ``report`` only rebuilds BENCHMARKS.md from the
results present. Everything from the first option on goes to each named benchmark
(``python -m benchmarks transport --quick``, ``python -m benchmarks peer --keep /tmp/peer``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

from rich.console import Console

from benchmarks import report

OWN = ("peer", "overhead", "startup", "transport", "aggregation", "scale")
OTHERS = ("strategies", "valuation", "valuation_properties", "dashboard")


def available() -> list[str]:
    return [name for name in (*OWN, *OTHERS) if importlib.util.find_spec(f"benchmarks.{name}") is not None]


def main(argv: Sequence[str]) -> int:
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = list(argv[:first_option]), list(argv[first_option:])
    console = Console()
    known = available()
    if unknown := [n for n in names if n not in (*known, "report")]:
        console.print(f"[red]unknown benchmark(s) {', '.join(unknown)}[/red]; choose from {', '.join(known)}, report")
        return 2
    chosen = [n for n in names if n != "report"] if names else known
    for name in chosen:
        console.rule(f"benchmarks.{name}")
        importlib.import_module(f"benchmarks.{name}").main(options)
    path = report.write()
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
