#!/usr/bin/env bash

#$ -N pi-run
#$ -q long
#$ -l h_rt=02:00:00
#$ -cwd
#$ -j y
#$ -S /bin/bash
#$ -o ./$JOB_NAME-$JOB_ID.out
#$ -A proj42
# A driver job for daskdeploy's sge backend, written by `daskdeploy jobscript --system sge`.
#
# This small job runs your script, the Dask scheduler and the client. The workers
# are SGE jobs of their own, submitted from inside it and named after the
# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or
# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole
# run: the worker jobs' time in the queue and your script's.
#
#     qsub THIS_FILE      (from the directory the relative paths refer to)
set -euo pipefail
set +u  # activation scripts may use unset variables
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u
<python> -m daskdeploy run --backend sge --workers 3 --option walltime=00:20:00 --option account=proj42 examples/pi.py --samples 2000000
