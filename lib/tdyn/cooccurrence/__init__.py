"""Part III: training dynamics of a transformer on word co-occurrence (Yang et al. 2024).

data        the co-occurrence task of Definition 2.1 and its training sets
model       the one-layer model of Eq. 1, its gradients and the gradient-flow training
experiment  the experiment of notebooks/cooccurrence.ipynb
"""
