"""Run the official Markov-Simple main.py with a fixed torch seed (harness, not their code).

Usage, from a directory that holds the official sources at Markov-Simple/src (for example
`git archive 5807025 Markov-Simple/src | tar -x` in a clone of github.com/Bond1995/Markov):

    PYTHONPATH=stubs python run_official.py SEED WORKDIR [main.py options ...]
"""
import os
import random
import runpy
import sys

import numpy as np
import torch

seed = int(sys.argv[1])
workdir = sys.argv[2]
sys.argv = ["main.py"] + sys.argv[3:]
torch.manual_seed(seed)
np.random.seed(seed)  # noqa: NPY002 - the official code uses the legacy global RNG
random.seed(seed)
torch.set_num_threads(1)
src = os.path.abspath("Markov-Simple/src")
sys.path.insert(0, src)
os.makedirs(workdir, exist_ok=True)
os.chdir(workdir)  # the official code writes .npy snapshots and checkpoints to the cwd
runpy.run_path(os.path.join(src, "main.py"), run_name="__main__")
