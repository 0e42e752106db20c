"""Part II: learning dynamics on Markov data and the effect of initialization (Makkuva et al.
2024).

chain        binary first-order Markov chains: entropy rate, unigram loss, sampling
reduced      the reduced (e, w, b) model: loss, critical points, energy, basins, gradient flow
transformer  the single-layer transformer of the official code, its initializations, training
experiment   the experiment of notebooks/markov_full.ipynb and the reading of its runs
"""
