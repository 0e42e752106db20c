"""Wall time of ``make book`` (``tools/build_book.py``): cold with the chapters executed in
parallel (one kernel per core) against cold with one chapter at a time, and the warm rebuild.

Each cold build runs on a fresh copy of ``book/`` (no ``_build``) in a temporary folder, so
the two variants do the same work; pairs alternate parallel and serial.  Prints each time,
the ratio serial / parallel pair by pair, the warm rebuild, and the machine's load (a loaded
machine stretches every time; the ratio is the steadier figure).  Targets: cold <= 60 s and
warm <= 5 s on 2 cores, judged on the best cold build (other work on the machine only adds
time: the same serial build has taken 100 s and 128 s ten minutes apart).

Run:  .venv/bin/python benchmarks/bench_book_build.py [--pairs 1]
"""

import argparse
import contextlib
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
build_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_book)


@contextlib.contextmanager
def quiet_file_descriptors(log: Path):
    """Send this process's and its children's stdout and stderr (the kernels, jupyter-book)
    to ``log`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def timed_build(book: Path, workers: int | None) -> float:
    """Seconds of one build of ``book`` (its output in ``build.log`` beside it); fails loudly,
    with the log's end, if it fails."""
    log = book.parent / "build.log"
    start = time.perf_counter()
    with quiet_file_descriptors(log):
        code = build_book.build(book, build_book.keyed_paths(), workers=workers)
    elapsed = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{tail}\nthe build of {book} failed (the log's end above)")
    return elapsed


def cold_build(tmp: Path, name: str, workers: int | None) -> tuple[float, Path]:
    book = tmp / name / "book"
    shutil.rmtree(book.parent, ignore_errors=True)
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build"))
    return timed_build(book, workers), book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1, help="parallel/serial cold pairs")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"book build, {cores} cores, load at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        ratios, parallels = [], []
        for k in range(args.pairs):
            parallel, book = cold_build(Path(tmp), "parallel", None)
            serial, _ = cold_build(Path(tmp), "serial", 1)
            ratios.append(serial / parallel)
            parallels.append(parallel)
            print(f"  pair {k + 1}: cold parallel {parallel:6.1f} s, cold serial {serial:6.1f} s,"
                  f" serial / parallel {serial / parallel:4.2f}x "
                  f"(load {os.getloadavg()[0]:.2f})")
        warm = min(timed_build(book, None) for _ in range(3))
    print(f"  warm rebuild (best of 3): {warm:5.1f} s  (target <= 5 s: "
          f"{'met' if warm <= 5 else 'NOT met'})")
    best, median = min(parallels), statistics.median(parallels)
    print(f"  cold parallel: best {best:5.1f} s, median {median:5.1f} s of {len(parallels)} "
          f"(target <= 60 s, on the best: {'met' if best <= 60 else 'NOT met'}); "
          f"serial / parallel, median: {statistics.median(ratios):4.2f}x; "
          f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
