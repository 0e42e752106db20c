"""Part III: training dynamics of a transformer on word co-occurrence (Yang et al. 2024).

data        the co-occurrence task of Definition 2.1 and its training sets
model       the one-layer model of Eq. 1, its gradients and the gradient-flow training
experiment  the experiment of notebooks/cooccurrence.ipynb
theory      the conserved balance kappa - m1 tr Gamma and the 1/(t log t) late-time law
checks      measured forms of Theorem 3.1's bounds, Lemmas 4.1, 4.3, Prop. E.21, Cor. F.13
msweep      the m-sweep of notebooks/cooccurrence_msweep.ipynb (the premise regime)
"""
