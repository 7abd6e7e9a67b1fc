#!/bin/bash
# Dask on one SLURM allocation, written by `daskdeploy sbatch`.
#
# The batch step runs the Dask scheduler and your script; `daskdeploy run --backend
# allocation` starts one Dask worker in each task of this job with srun:
# 2 workers (--ntasks) x 1 thread (--cpus-per-task).
# Memory: the site's default (no --mem-per-cpu or --mem).
# No other job is submitted, so `scancel <job id>` stops everything, and the time
# limit bounds the whole run.
#
# Submit it from the directory the relative paths below refer to: the job runs
# there, and a relative --output lands there (%x: job name, %j: job id).
#
#     sbatch THIS_FILE

#SBATCH --job-name=dask-pi
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"

exec daskdeploy run --backend allocation examples/pi.py
