"""Gather the official code's logs (``LOGDIR/p{p}_q{q}_{init}_s{seed}.log``) into one JSON file.

Usage: python collect.py LOGDIR OUT.json   (provenance is added by hand to the result)
Each log line "ITR [train] loss=A [val] loss=B, ..." gives the step, the loss of the last
training batch and the code's test loss at that step.
"""
import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"^(\d+) \[train\] loss=([\d.]+) \[val\] loss=([\d.]+)")
NAME = re.compile(r"p([\d.]+)_q([\d.]+)_(\w+)_s(\d+)\.log$")

runs = []
for log in sorted(Path(sys.argv[1]).glob("*.log")):
    p, q, init, seed = NAME.search(log.name).groups()
    rows = [m.groups() for m in map(LINE.match, log.read_text().splitlines()) if m]
    if not rows:
        raise SystemExit(f"{log}: no loss lines (did the run fail?)")
    runs.append({"p": float(p), "q": float(q), "init": init, "torch_seed": int(seed),
                 "steps": [int(r[0]) for r in rows],
                 "train_loss_last_batch": [float(r[1]) for r in rows],
                 "val_loss": [float(r[2]) for r in rows]})
Path(sys.argv[2]).write_text(json.dumps({"runs": runs}, indent=1) + "\n")
print(f"{len(runs)} runs -> {sys.argv[2]}")
