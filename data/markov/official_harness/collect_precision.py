"""Gather the logs of compare_precision.sh (``LOGDIR/<mode>/p{p}_q{q}_{init}_s{seed}[_T{T}].log``)
into one JSON file, with the provenance given on the command line.

Usage: python collect_precision.py LOGDIR OUT.json TORCH_VERSION DATE [--merge]
With --merge, the runs already in OUT.json that LOGDIR has no finished log for are kept (the
T = 1024 runs were collected after the T = 256 runs, whose logs were no longer at hand).
Each log line "ITR [train] loss=A [val] loss=B, ..." gives the step, the loss of the last
training batch and the code's test loss (one fresh batch, under the training precision).
"""
import json
import re
import sys
from pathlib import Path

LINE = re.compile(r"^(\d+) \[train\] loss=([\d.]+) \[val\] loss=([\d.]+)")
NAME = re.compile(r"p([\d.]+)_q([\d.]+)_(\w+?)_s(\d+)(?:_T(\d+))?\.log$")

runs = []
for log in sorted(Path(sys.argv[1]).glob("*/*.log")):
    p, q, init, seed, seq_len = NAME.search(log.name).groups()
    if not (log.parent / log.name.replace(".log", ".done")).exists():
        continue  # unfinished
    rows = [m.groups() for m in map(LINE.match, log.read_text().splitlines()) if m]
    runs.append({"p": float(p), "q": float(q), "init": init, "torch_seed": int(seed),
                 "precision": log.parent.name, "seq_len": int(seq_len or 256),
                 "steps": [int(r[0]) for r in rows],
                 "train_loss_last_batch": [float(r[1]) for r in rows],
                 "val_loss": [float(r[2]) for r in rows]})
if "--merge" in sys.argv[5:] and Path(sys.argv[2]).exists():
    def key(run):
        return run["p"], run["q"], run["init"], run["torch_seed"], run["precision"], run["seq_len"]
    fresh = {key(run) for run in runs}
    kept = [run for run in json.loads(Path(sys.argv[2]).read_text())["runs"]
            if key(run) not in fresh]
    runs = kept + runs
provenance = {
    "code": "github.com/Bond1995/Markov, Markov-Simple/src at commit 5807025",
    "patch": "data/markov/official_harness/patch_precision.py (training precision)",
    "command": "data/markov/official_harness/compare_precision.sh",
    "device": "cpu (CPU autocast, one thread)", "torch": sys.argv[3], "date": sys.argv[4],
    "settings": ("p 0.5, q 0.8, 1000 iterations, batch 16, n_embd 8, lr 2e-3, eval every 25, "
                 "sequence length 256 or 1024 (seq_len of each run)"),
}
Path(sys.argv[2]).write_text(json.dumps({"provenance": provenance, "runs": runs}, indent=1)
                             + "\n")
print(f"{len(runs)} runs -> {sys.argv[2]}")
