"""tdyn: the library behind the book *Transformer training dynamics, re-derived*.

All math and models of the book live here; chapters and notebooks only import it.

Modules
-------
gaussian   Gaussian expectations: closed forms, Gauss-Hermite quadrature, seeded Monte Carlo.
params     Typed, range-checked parameter declarations shared by notebooks and the runner.
plotting   The single figure style of the book.
devices    Choosing a torch device (CPU by default, ``"auto"`` picks CUDA when present).
"""

__version__ = "0.1.0"
