#!/bin/bash
# A driver job for daskdeploy's moab backend (Moab Workload Manager, usually on Torque).
#
# This small job runs your Python script, the Dask scheduler and the client. The Dask
# workers are NOT part of this job: daskdeploy submits them as separate Moab jobs (msub)
# from inside it, each named after the deployment (dd-xxxxxxxx). When the script
# finishes, fails, or this job is cancelled (canceljob) or reaches its time limit,
# daskdeploy cancels those worker jobs: on Torque, the job gets SIGTERM first and SIGKILL
# only after a delay the site sets (qdel(1B)). So `canceljob` on this job stops
# everything.
#
# This job's time limit bounds the whole run: it must cover the time the worker jobs
# wait in the queue plus the time your script needs.
#
# Submit from the top of the daskdeploy checkout (or change the script path below):
#
#     msub examples/jobscripts/moab.sh
#     msub -v DASK_WORKERS=16 examples/jobscripts/moab.sh    # another number of workers
#
# Replace the <...> placeholders and delete what your site does not need. msub reads
# job scripts "in either PBS or LoadLeveler syntax" and takes qsub's options (Moab
# Workload Manager documentation, msub), so these are PBS lines: "#PBS" lines are msub
# options, "##PBS" lines are switched off (remove one '#' to use them). Options given on
# the msub command line win over these.
#
# daskdeploy's moab backend has NOT been run against a real Moab server: its job scripts
# and error handling are tested, its runs are not. Please report what you find.

# The job's name, as showq shows it (msub -N).
#PBS -N dask-driver
# Standard error into standard output (msub -j oe).
#PBS -j oe
# Give the job the environment msub runs in (msub -V): PATH, an activated virtual or
# conda environment, loaded modules. Delete it if you load the environment below instead.
#PBS -V
# Time limit of this job, HH:MM:SS (msub -l walltime). Longer than the workers'
# walltime (00:30:00 below).
#PBS -l walltime=01:00:00
# One node, 2 cores and 2 GB: the scheduler and the client need little (msub -l, in
# Torque's resource syntax, which most Moab sites use).
#PBS -l nodes=1:ppn=2
#PBS -l mem=2gb
# Class, Moab's word for a queue (msub -q; `mdiag -c` lists them), and account (msub
# -A): only where your site asks for them.
##PBS -q <class>
##PBS -A <account>

set -euo pipefail

# --- Your Python environment -------------------------------------------------------
# The worker jobs run the same Python as this job, so the environment must be on a
# file system that the compute nodes see (your home or project directory usually is).
# With -V above the job already has the environment you submitted from; otherwise load
# it here. Activation scripts sometimes use unset variables, hence the set +u / set -u.
set +u
# module load python/3.11                    # if your site uses environment modules
# source "$HOME/venvs/dask/bin/activate"     # a virtual environment, or:
# conda activate dask                        # a conda environment
set -u

# On Torque a job starts in your home directory. The directory msub was run from, which
# the relative paths below refer to, is in MOAB_SUBMITDIR (Moab) or PBS_O_WORKDIR
# (Torque's name for it).
cd "${MOAB_SUBMITDIR:-${PBS_O_WORKDIR:-.}}"

echo "Driver job ${MOAB_JOBID:-${PBS_JOBID:-?}} on $(hostname) at $(date)"

# --- The run -----------------------------------------------------------------------
# 8 workers (or DASK_WORKERS, if set: msub -v DASK_WORKERS=16), each in its own 1-core,
# 1 GiB worker job with a 30-minute time limit. The summary line on stderr (in the
# output file) names the deployment id:
#     daskdeploy: dd-xxxxxxxx on moab: 8 workers x 1 thread, ...
# and `showq -u $USER` lists its worker jobs under that name.
# Add --option queue=<class> or --option account=<account> if the worker jobs need them
# too; they do not inherit this job's #PBS lines. On Torque, also give the worker jobs
# Torque's resource syntax: --option 'resource_spec=nodes=1:ppn=1,mem=1gb'.
# --report ends the log with the workers' CPU efficiency and why, if it is low.
WORKERS="${DASK_WORKERS:-8}"
daskdeploy run --backend moab --workers "$WORKERS" --option walltime=00:30:00 --report examples/pi.py

echo "Driver job done at $(date)"
