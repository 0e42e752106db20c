"""Patch an extracted copy of the official Markov-Simple/src/optim/base.py (commit 5807025)
so that its training loop runs under a chosen precision on any device (harness, not their code).

Usage, from the directory that holds Markov-Simple/src:

    python patch_precision.py MODE      MODE: float16 | float16-scaled | bfloat16

float16: the official loop's float16 autocast, enabled on the CPU too (the code disables it
there); float16-scaled: the same with torch.amp.GradScaler (initial scale 2^16) around
backward and the optimizer step; bfloat16: bfloat16 autocast, no scaler.  Evaluation uses the
same context as training, as in the official loop.  The patch fails loudly if the lines it
replaces are not found exactly once.
"""
import sys
from pathlib import Path

MODE = sys.argv[1]
if MODE not in ("float16", "float16-scaled", "bfloat16"):
    raise SystemExit(f"unknown mode {MODE!r}")
path = Path("Markov-Simple/src/optim/base.py")
text = path.read_text()
dtype = "torch.bfloat16" if MODE == "bfloat16" else "torch.float16"
edits = [
    ("    type_ctx = nullcontext() if device_type == 'cpu' else torch.amp.autocast(\n"
     "        device_type=device_type, dtype=torch.float16)",
     f"    type_ctx = torch.amp.autocast(\n        device_type=device_type, dtype={dtype})"),
]
if MODE == "float16-scaled":
    edits += [
        ("            loss.backward()\n",
         "            scaler.scale(loss).backward()\n"),
        ("        opt.step()\n",
         "        scaler.step(opt)\n        scaler.update()\n"),
        ("    while itr < iterations:\n",
         "    scaler = torch.amp.GradScaler(device_type, init_scale=2.0**16)\n"
         "    while itr < iterations:\n"),
    ]
for old, new in edits:
    if text.count(old) != 1:
        raise SystemExit(f"{path}: expected exactly one {old!r}")
    text = text.replace(old, new)
path.write_text(text)
print(f"patched {path} for {MODE}")
