#!/bin/bash
# Dask on one SLURM allocation, written by `daskdeploy sbatch`.
#
# The batch step runs the Dask scheduler and your script; `daskdeploy run --backend
# allocation` starts the Dask workers in the tasks of this job with srun, one
# single-threaded worker process per CPU (pure-Python code holds the GIL):
# 4 tasks (--ntasks) x 2 CPUs (--cpus-per-task) = 8 workers x 1 thread.
# For one worker of N threads per task instead (code that releases the GIL, such as
# NumPy), add --threads-per-worker N to the `daskdeploy run` line below.
# Memory: 2G per CPU (--mem-per-cpu).
# No other job is submitted, so `scancel <job id>` stops everything, and the time
# limit bounds the whole run.
#
# Submit it from the directory the relative paths below refer to: the job runs
# there, and a relative --output lands there (%x: job name, %j: job id).
#
#     sbatch THIS_FILE

#SBATCH --job-name="run \"A\" #1"
#SBATCH --nodes=2
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=2
#SBATCH --mem-per-cpu=2G
#SBATCH --time=02:30:00
#SBATCH --partition=compute
#SBATCH --account=proj42
#SBATCH --qos=short
#SBATCH --output=logs/%x-%j.out
#SBATCH --constraint=skylake
#SBATCH --mail-type=END

set -euo pipefail

# The Python environment. The workers start from this environment too, so it
# must be on a file system the compute nodes see. Activation scripts may use
# unset variables, hence set +u / set -u.
set +u
module load python/3.11
source "$HOME/venvs/dask/bin/activate"
set -u

cd "${SLURM_SUBMIT_DIR:-.}"

exec '/opt/my env/bin/python' -m daskdeploy run --backend allocation 'my scripts/analysis.py' 'two words' 'it'"'"'s' 'say "hi"' '$HOME' 'a;rm -rf /' '*' '' '--flag=`id`'
