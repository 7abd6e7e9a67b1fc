#!/bin/bash
# A driver job for daskdeploy's pbs backend (PBS Professional, OpenPBS, Torque).
#
# This small job runs your Python script, the Dask scheduler and the client. The Dask
# workers are NOT part of this job: daskdeploy submits them as separate PBS jobs from
# inside it, each named after the deployment (dd-xxxxxxxx). When the script finishes,
# fails, or this job is deleted (qdel) or reaches its time limit, daskdeploy deletes
# those worker jobs: PBS sends SIGTERM first, and SIGKILL only after a delay the site
# sets (qdel(1B)), which daskdeploy uses to clean up. So `qdel` on this job stops
# everything.
#
# This job's time limit bounds the whole run: it must cover the time the worker jobs
# wait in the queue plus the time your script needs.
#
# Submit from the top of the daskdeploy checkout (or change the script path below):
#
#     qsub examples/jobscripts/pbs.sh
#     qsub -v DASK_WORKERS=16 examples/jobscripts/pbs.sh    # another number of workers
#
# Replace the <...> placeholders and delete what your site does not need. Lines starting
# with "#PBS" are qsub options; "##PBS" lines are switched off (remove one '#' to use
# them). Options given on the qsub command line win over these. Every option is in the
# manual page qsub(1B) (`man qsub`; OpenPBS and PBS Professional; Torque's qsub takes the
# same ones, except where noted).
#
# daskdeploy's pbs backend has NOT been run against a real PBS server: its job scripts
# and error handling are tested, its runs are not. Please report what you find.

# The job's name, as qstat shows it (qsub -N).
#PBS -N dask-driver
# Standard error into standard output (qsub -j oe). Without -o, PBS writes it to
# dask-driver.o<job number> in the directory qsub was run from.
#PBS -j oe
# Give the job the environment qsub runs in (qsub -V): PATH, an activated virtual or
# conda environment, loaded modules. Delete it if you load the environment below instead.
#PBS -V
# Time limit of this job, HH:MM:SS (qsub -l walltime; pbs_resources(7B)). Longer than
# the workers' walltime (00:30:00 below).
#PBS -l walltime=01:00:00
# One chunk of 2 CPUs and 2 GB: the scheduler and the client need little (qsub -l
# select; PBS Professional and OpenPBS). On Torque use the second line instead.
#PBS -l select=1:ncpus=2:mem=2gb
##PBS -l nodes=1:ppn=2,mem=2gb
# Queue (qsub -q; `qstat -Q` lists them) and account (qsub -A): only where your site
# asks for them.
##PBS -q <queue>
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

# PBS starts the job in your home directory; PBS_O_WORKDIR is the directory qsub was
# run from (qsub(1B), "ENVIRONMENT VARIABLES"), which the relative paths below refer to.
cd "${PBS_O_WORKDIR:-.}"

echo "Driver job ${PBS_JOBID:-?} on $(hostname) at $(date)"

# --- The run -----------------------------------------------------------------------
# 8 workers (or DASK_WORKERS, if set: qsub -v DASK_WORKERS=16), each in its own 1-core,
# 1 GiB worker job with a 30-minute time limit. The summary line on stderr (in the
# output file above) names the deployment id:
#     daskdeploy: dd-xxxxxxxx on pbs: 8 workers x 1 thread, ...
# and `qstat -f` shows it as the Job_Name of its worker jobs.
# Add --option queue=<queue> or --option account=<account> if the worker jobs need them
# too; they do not inherit this job's #PBS lines. On Torque, also give the worker jobs
# Torque's resource syntax, e.g. --option 'resource_spec=nodes=1:ppn=1,mem=1gb'.
# --report ends the log with the workers' CPU efficiency and why, if it is low.
WORKERS="${DASK_WORKERS:-8}"
daskdeploy run --backend pbs --workers "$WORKERS" --option walltime=00:30:00 --report examples/pi.py

echo "Driver job done at $(date)"
