#!/bin/bash
# Dask on one SLURM allocation, written by `daskdeploy sbatch`.
#
# The batch step runs the Dask scheduler and your script; `daskdeploy run --backend
# allocation` starts the Dask workers in the tasks of this job with srun, one
# single-threaded worker process per CPU (pure-Python code holds the GIL):
# 8 tasks (--ntasks) x 4 CPUs (--cpus-per-task) = 32 workers x 1 thread.
# For one worker of N threads per task instead (code that releases the GIL, such as
# NumPy), add --threads-per-worker N to the `daskdeploy run` line below.
# Memory: 16G per node (--mem), shared by the node's workers.
# No other job is submitted, so `scancel <job id>` stops everything, and the time
# limit bounds the whole run.
#
# Submit it from the directory the relative paths below refer to: the job runs
# there, and a relative --output lands there (%x: job name, %j: job id).
#
#     sbatch THIS_FILE

#SBATCH --job-name=dask--odd
#SBATCH --nodes=2
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=01:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"

exec daskdeploy run --backend allocation -- -odd.py --samples 100
