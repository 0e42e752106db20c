"""Part I: signal propagation and trainability at initialization (Cowsik et al. 2024).

architecture    the transformer family (residual form, LayerNorm placement, scales)
nonlinearity    the MLP nonlinearities: phi, phi', torch phi and closed-form kernels
gaussian        Gaussian expectations and the MLP kernels K(rho) of each nonlinearity
theory          the mean-field (q, p) map, the collapsed fixed point, lambda_a, phase diagrams
gradients       the gradient exponent lambda_g (common and differential modes)
simulate        finite-width random transformers, batched over architectures and seeds
measure         lambda_a and the input-output Jacobian measured on random networks
trainability/   the masked-token task, the trained model, the sweep and its analysis
kernel_check    the Gaussian-kernel check of notebooks/kernel_check.ipynb (an experiment)
"""
