#!/usr/bin/env bash

#BSUB -J pi-run
#BSUB -q long
#BSUB -P "proj42"
#BSUB -n 1
#BSUB -M 2147484
#BSUB -W 02:00
#BSUB -o ./pi-run-%J.out
# A driver job for daskdeploy's lsf backend, written by `daskdeploy jobscript --system lsf`.
#
# This small job runs your script, the Dask scheduler and the client. The workers
# are LSF jobs of their own, submitted from inside it and named after the
# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or
# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole
# run: the worker jobs' time in the queue and your script's.
#
#     bsub < THIS_FILE      (from the directory the relative paths refer to)
set -euo pipefail
set +u  # activation scripts may use unset variables
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u
<python> -m daskdeploy run --backend lsf --workers 3 --option walltime=00:20:00 --option account=proj42 examples/pi.py --samples 2000000
