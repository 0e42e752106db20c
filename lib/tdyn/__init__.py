"""tdyn: the library behind the book *Transformer training dynamics, re-derived*.

All math and models of the book live here; chapters and notebooks only import it.

The book's machinery
    gaussian       Gaussian expectations: closed forms, quadrature, seeded Monte Carlo
    params         typed, range-checked parameters shared by notebooks and the runner
    runs, runner   run store with provenance (resumable sweeps, manifest); ``tdyn run``
    plotting       the single figure style of the book
    devices        choosing a torch device (CPU by default, ``"auto"`` picks CUDA)
    cli            the command line ``python -m tdyn``

Part I: signal propagation (Cowsik, Nebabu, Qi & Ganguli 2024)
    architecture   the transformer family, defined once for theory and simulation
    signalprop     the (q, p) map, fixed points, the angle exponent, phase diagrams
    simulate       finite-width random transformers in torch
    gradients      the gradient exponent, in theory and by autograd
    trainability   the trainability experiment: test loss against the exponents

Part II: Markov chains (Makkuva et al. 2024)
    markov         binary Markov chains and the reduced (e, w, b) model
    markov_model   the full single-layer transformer, two initializations

Part III: word co-occurrence (Yang, Kailkhura, Wang & Liang 2024)
    cooccurrence_data        the task's data (Definition 2.1, Assumption 2.3)
    cooccurrence             the model of Eq. 1, analytic gradients, gradient flow
    cooccurrence_experiment  the Figure-1 experiment and its seed sweep
"""

__version__ = "0.1.0"
