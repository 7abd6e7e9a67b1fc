#!/bin/bash
# A driver job for daskdeploy's sge backend (Grid Engine: SGE, Son of Grid Engine,
# Univa/Altair Grid Engine).
#
# This small job runs your Python script, the Dask scheduler and the client. The Dask
# workers are NOT part of this job: daskdeploy submits them as separate Grid Engine jobs
# from inside it, one job array named after the deployment (dd-xxxxxxxx). When the
# script finishes or fails, daskdeploy deletes those worker jobs. If you `qdel` this job
# or it reaches its time limit, Grid Engine kills it outright (SIGKILL, no warning), and
# daskdeploy's reaper, a small process it left next to it, deletes the worker jobs
# instead (see "Ending worker jobs" in docs/how-it-works/batch-jobs.rst).
#
# This job's time limit bounds the whole run: it must cover the time the worker jobs
# wait in the queue plus the time your script needs.
#
# Submit from the top of the daskdeploy checkout (or change the script path below):
#
#     qsub examples/jobscripts/sge.sh
#     qsub -v DASK_WORKERS=16 examples/jobscripts/sge.sh    # another number of workers
#
# Replace the <...> placeholders and delete what your site does not need. Lines starting
# with "#$" are qsub options; "##$" lines are switched off (remove one '#' to use them).
# Options given on the qsub command line win over these. Every option is in the manual
# page qsub(1) (`man qsub`; Son of Grid Engine 8.1, which daskdeploy is tested against).

# The job's name, as qstat shows it (qsub -N).
#$ -N dask-driver
# Run the job in the directory qsub was run from (qsub -cwd); without it, in your home.
#$ -cwd
# Run the script with bash (qsub -S): many cells start jobs with /bin/sh or csh and
# ignore the #! line above.
#$ -S /bin/bash
# Standard error into standard output (qsub -j y), written to dask-driver-<job id>.out in
# the submit directory (qsub -o; $JOB_ID is replaced by the job id).
#$ -j y
#$ -o dask-driver-$JOB_ID.out
# Give the job the environment qsub runs in (qsub -V): PATH, an activated virtual or
# conda environment, loaded modules. Delete it if you load the environment below instead.
#$ -V
# Time limit of this job, HH:MM:SS (qsub -l h_rt; queue_conf(5), "RESOURCE LIMITS").
# Longer than the workers' walltime (00:30:00 below).
#$ -l h_rt=01:00:00
# One slot is enough: the scheduler and the client need little CPU. Memory: Grid Engine
# cells name their memory resource differently (h_vmem, mem_free, ...): ask your site.
##$ -l h_vmem=2G
# Queue (qsub -q; `qconf -sql` lists them), project (qsub -P; `qconf -sprjl`) and
# account string (qsub -A): only where your site asks for them.
##$ -q <queue>
##$ -P <project>
##$ -A <account>

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

# -cwd starts the job in the directory you submitted from; say so explicitly.
# Grid Engine sets SGE_O_WORKDIR to that directory (qsub(1), "ENVIRONMENT VARIABLES").
cd "${SGE_O_WORKDIR:-.}"

echo "Driver job ${JOB_ID:-?} on $(hostname) at $(date)"

# --- The run -----------------------------------------------------------------------
# 8 workers (or DASK_WORKERS, if set: qsub -v DASK_WORKERS=16), each in its own 1-slot
# worker job with a 30-minute time limit. The summary line on stderr (in the output
# file above) names the deployment id:
#     daskdeploy: dd-xxxxxxxx on sge: 8 workers x 1 thread, ...
# and `qstat` lists its worker jobs under that name.
# Add --option queue=<queue>, --option project=<project> or --option account=<account>
# if the worker jobs need them too; they do not inherit this job's #$ lines.
# --report ends the log with the workers' CPU efficiency and why, if it is low.
WORKERS="${DASK_WORKERS:-8}"
daskdeploy run --backend sge --workers "$WORKERS" --option walltime=00:30:00 --report examples/pi.py

echo "Driver job done at $(date)"
