"""The machinery of heavy runs, shared by every part.

params  typed, range-checked notebook parameters and the constraints between them
store   the run store: run directories, provenance, locking, resumable sweeps, loading, manifest
runner  ``python -m tdyn run``: validate, then execute a notebook into a run
sweep   one driver for every experiment (configurations, seeds, run_configuration)
"""
