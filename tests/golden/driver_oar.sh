#!/usr/bin/env bash

#OAR -n pi-run
#OAR -q long
#OAR --project proj42
#OAR -l /nodes=1/core=1,walltime=02:00:00
#OAR -O ./%jobname%-%jobid%.out
#OAR -E ./%jobname%-%jobid%.err
# A driver job for daskdeploy's oar backend, written by `daskdeploy jobscript --system oar`.
#
# This small job runs your script, the Dask scheduler and the client. The workers
# are OAR jobs of their own, submitted from inside it and named after the
# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or
# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole
# run: the worker jobs' time in the queue and your script's.
#
#     oarsub -S ./THIS_FILE      (from the directory the relative paths refer to)
set -euo pipefail
set +u  # activation scripts may use unset variables
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u
<python> -m daskdeploy run --backend oar --workers 3 --option walltime=00:20:00 --option account=proj42 examples/pi.py --samples 2000000
