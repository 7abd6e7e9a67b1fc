"""Helpers to run real test infrastructure (such as a SLURM cluster) locally."""
