"""tdyn: the library behind the book *Transformer training dynamics, re-derived*.

All math and models of the book live here; chapters and notebooks only import it.  The layout
follows the book: one package per part, and below them the machinery they share.

Part I    tdyn.signalprop    signal propagation and trainability at initialization
                             (Cowsik, Nebabu, Qi & Ganguli 2024): the transformer family, the
                             (q, p) map, lambda_a and lambda_g, simulation and measurement,
                             the trainability sweep
Part II   tdyn.markov        learning dynamics on Markov data (Makkuva et al. 2024): chains,
                             the reduced (e, w, b) model, the single-layer transformer
Part III  tdyn.cooccurrence  word co-occurrence by gradient flow (Yang, Kailkhura, Wang &
                             Liang 2024): the task, the model of Eq. 1, the experiment

Shared    tdyn.runs          parameters, the run store with provenance, ``tdyn run``, one sweep
                             driver for every experiment
          tdyn.plotting      the one figure style
          tdyn.devices       torch device and threads
          tdyn.cli           the command line ``python -m tdyn``

Imports point one way: the parts import the shared modules, never each other's internals
upwards, and nothing shared imports a part (tests/test_imports.py checks it).
"""

__version__ = "0.1.0"
