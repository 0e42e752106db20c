"""Part I trainability: does (lambda_a, lambda_g) at initialization predict the final loss?

task        masked-token prediction in a topic model, with its exact Bayes loss
model       the trained transformer of the family, as a batched ensemble
experiment  the sweep of notebooks/trainability_sweep.ipynb
analysis    predictors of the final test loss and the claims read off a sweep
"""
