#!/usr/bin/env bash

#SBATCH -J pi-run
#SBATCH -p long
#SBATCH -A proj42
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH -t 02:00:00
#SBATCH --output=./%x-%j.out
#SBATCH --comment=daskdeploy:pi-run
# A driver job for daskdeploy's slurm backend, written by `daskdeploy jobscript --system slurm`.
#
# This small job runs your script, the Dask scheduler and the client. The workers
# are SLURM jobs of their own, submitted from inside it and named after the
# deployment (dd-xxxxxxxx); when the script ends, fails, or this job is cancelled or
# reaches its time limit, daskdeploy cancels them. Its time limit bounds the whole
# run: the worker jobs' time in the queue and your script's.
#
#     sbatch THIS_FILE      (from the directory the relative paths refer to)
set -euo pipefail
set +u  # activation scripts may use unset variables
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u
<python> -m daskdeploy run --backend slurm --workers 3 --option walltime=00:20:00 --option account=proj42 examples/pi.py --samples 2000000
