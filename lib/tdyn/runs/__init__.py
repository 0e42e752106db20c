"""The machinery of heavy runs, shared by every part.

params     typed, range-checked notebook parameters and the constraints between them
store      the run store: run directories, provenance, locking, resumable sweeps, loading, manifest
runner     ``python -m tdyn run``: validate, then execute a notebook into a run
protocol   what every experiment module offers (configurations, seeds, run_configuration)
sweep      one driver for every experiment, and loading a profile's run with its seeds
executors  the pending configurations of a run as submitit array tasks (SLURM or local)
"""
