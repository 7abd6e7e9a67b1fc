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
#SBATCH --nodes=1
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --qos=normal
#SBATCH --output=%x-%j.out
#SBATCH --ntasks-per-node=2
#SBATCH --exclusive
#SBATCH --gres=gpu:1
#SBATCH --constraint=skylake|haswell
#SBATCH --mail-type=END
#SBATCH --mail-user=me@example.org
#SBATCH -x n3
#SBATCH -C ib
#SBATCH -H
#SBATCH --comment="run #2 of \"A\""
#SBATCH --requeue
#SBATCH --signal=B:USR1@60
#SBATCH --exclusive=user

set -euo pipefail

cd "${SLURM_SUBMIT_DIR:-.}"

exec daskdeploy run --backend allocation pi.py --samples 10 --exclusive
