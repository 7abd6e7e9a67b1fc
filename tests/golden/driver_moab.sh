#!/usr/bin/env bash

#PBS -N pi-run
#PBS -q long
#PBS -A proj42
#PBS -l nodes=1:ppn=1,mem=2048mb
#PBS -l walltime=02:00:00
#PBS -o ./
#PBS -j oe
# A driver job for daskdeploy's moab backend, written by `daskdeploy jobscript --system moab`.
#
# This small job runs your script, the Dask scheduler and the client. The workers
# are Moab jobs of their own, submitted from inside it and named after the
# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or
# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole
# run: the worker jobs' time in the queue and your script's.
#
#     msub THIS_FILE      (from the directory the relative paths refer to)
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
set +u  # activation scripts may use unset variables
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u
<python> -m daskdeploy run --backend moab --workers 3 --option walltime=00:20:00 --option account=proj42 examples/pi.py --samples 2000000
