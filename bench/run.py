"""``make bench``: what telemetry costs the app, and how fast otelviewer ingests and answers.

Usage::

    python bench/run.py            # the full run (a few minutes)
    python bench/run.py --quick    # reduced sizes, under a minute
    python bench/run.py --only app --only query

Every result is printed as one JSON line as soon as it is measured (and
appended to bench/results/last-run.jsonl); a summary with "met" / "NOT MET"
per goal and the run's duration closes the run. The exit status is 1 when a
benchmark could not run, and, with ``--check``, 3 when a goal is not met.
docs/benchmarks.md explains the method and records the figures.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path

# `python bench/run.py` puts bench/ on sys.path; the modules import `bench.*` and `tests.support`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, ROOT, Goal, emit, machine

logger = logging.getLogger("bench.run")

#: Benchmark name -> module; each module has ``run(*, quick: bool) -> list[Goal]``.
BENCHMARKS = {
    "app": "bench.app_overhead",
    "ingest": "bench.ingest",
    "query": "bench.query",
}
#: Exit status when ``--check`` is given and a goal is not met.
GOAL_NOT_MET = 3


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks asked for; return the exit status."""
    parser = argparse.ArgumentParser(description="flask-opentelemetry benchmarks")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: under a minute")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--check", action="store_true", help="exit 3 when a goal is not met")
    args = parser.parse_args(argv)
    # Only our own progress lines: the app seeded in-process logs at INFO too.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("bench: %(message)s"))
    bench_logger = logging.getLogger("bench")
    bench_logger.addHandler(handler)
    bench_logger.setLevel(logging.INFO)
    os.chdir(ROOT)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "last-run.jsonl").unlink(missing_ok=True)

    started = time.monotonic()
    emit({"bench": "machine", "quick": args.quick, **machine()})
    goals: list[Goal] = []
    failed: list[str] = []
    for name in args.only or list(BENCHMARKS):
        logger.info("running %s%s", name, " (quick)" if args.quick else "")
        section_started = time.monotonic()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            goals.extend(module.run(quick=args.quick))
        except Exception:
            failed.append(name)
            traceback.print_exc()
        logger.info("%s took %.1f s", name, time.monotonic() - section_started)
    duration = time.monotonic() - started
    emit({"bench": "run", "quick": args.quick, "duration_s": round(duration, 1)})

    print("\nSummary" + (" (quick)" if args.quick else ""))
    for goal in goals:
        print("  " + goal.line())
    for name in failed:
        print(f"  {name}: FAILED to run (see the traceback above)")
    print(f"  total duration: {duration:.1f} s")
    if failed:
        return 1
    if args.check and not all(goal.met for goal in goals):
        return GOAL_NOT_MET
    return 0


if __name__ == "__main__":
    sys.exit(main())
