"""Wall time of ``pytest tests`` on every core, and where it goes.

Runs the suite as ``make test`` does (pytest-xdist, one file per worker) with pytest's
durations of every phase, then sums those durations by kind of work: the tests that execute
every chapter of the book cold (the browser test's build and the student edition), the other
tests that execute chapters or notebooks, the run store, executors and command line (many in
subprocesses), and the rest (the library).  Prints the wall time against the 60 s target, the
total CPU-side test time, and the floor the cold executions put on the wall time whatever the
rest costs: their sum over the number of workers.

Run:  .venv/bin/python benchmarks/bench_test_suite.py [--workers 2]
"""

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KINDS = (
    ("cold executions of every chapter", ("tests/book/test_browser.py",
                                          "tests/book/test_student_book.py")),
    ("other chapter and notebook executions", ("tests/book/",)),
    ("the run store, executors and command line", ("tests/runs/", "tests/test_cli")),
    ("the library", ("tests/",)),
)
"""Kinds of work by test-file prefix, the first match wins."""

DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S+)")


def kind_of(test_id: str) -> str:
    return next(name for name, prefixes in KINDS if test_id.startswith(prefixes))


def main(workers: int) -> None:
    command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
               "-n", str(workers), "--dist", "loadfile", "--durations=0",
               "--durations-min=0"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    wall = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({summary}); run it to see why")
    seconds = defaultdict(float)
    for line in done.stdout.splitlines():
        match = DURATION.match(line)
        if match:
            seconds[kind_of(match.group(3))] += float(match.group(1))
    total = sum(seconds.values())
    print(f"pytest tests on {workers} workers (load {os.getloadavg()[0]:.1f} at the end): "
          f"{wall:.0f} s wall (target <= 60 s: {'met' if wall <= 60 else 'NOT met'}); "
          f"{summary}")
    for name, _ in KINDS:
        print(f"  {name:42s}: {seconds[name]:7.1f} s ({seconds[name] / total:4.0%})")
    cold = seconds[KINDS[0][0]]
    print(f"  sum of test durations                     : {total:7.1f} s; the cold executions "
          f"alone put the wall time at >= {cold / workers:.0f} s on {workers} workers")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    main(parser.parse_args().workers)
