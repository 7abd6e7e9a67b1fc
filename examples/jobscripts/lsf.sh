#!/bin/bash
# A driver job for daskdeploy's lsf backend (IBM Spectrum LSF).
#
# This small job runs your Python script, the Dask scheduler and the client. The Dask
# workers are NOT part of this job: daskdeploy submits them as separate LSF jobs from
# inside it, each named after the deployment (dd-xxxxxxxx). When the script finishes,
# fails, or this job is killed (bkill: SIGINT and SIGTERM first, then SIGKILL) or warned
# of its run limit (-wa/-wt below), daskdeploy kills those worker jobs. So `bkill` on
# this job stops everything.
#
# This job's run limit bounds the whole run: it must cover the time the worker jobs wait
# in the queue plus the time your script needs.
#
# Submit from the top of the daskdeploy checkout (or change the script path below), with
# the script on standard input: bsub reads the #BSUB lines of a script given as a file
# argument only where the cluster sets LSB_BSUB_PARSE_SCRIPT=Y (bsub, "job_script").
#
#     bsub < examples/jobscripts/lsf.sh
#     DASK_WORKERS=16 bsub < examples/jobscripts/lsf.sh    # another number of workers
#
# Replace the <...> placeholders and delete what your site does not need. Lines starting
# with "#BSUB" are bsub options; "##BSUB" lines are switched off (remove one '#' to use
# them). Options given on the bsub command line win over these. Every option is in the
# IBM Spectrum LSF 10.1 command reference, bsub.
#
# daskdeploy's lsf backend has NOT been run against a real LSF cluster: its job scripts
# and error handling are tested, its runs are not. Please report what you find.

# The job's name, as bjobs shows it (bsub -J).
#BSUB -J dask-driver
# Output and errors (without -e they go with the output) to dask-driver-<job id>.out in
# the submit directory (bsub -o; %J is replaced by the job id).
#BSUB -o dask-driver-%J.out
# Run limit of this job, [hours:]minutes (bsub -W). Longer than the workers' walltime
# (00:30:00 below).
#BSUB -W 01:00
# At the run limit LSF sends SIGUSR2, which would end daskdeploy before it can kill the
# worker jobs. Instead send SIGTERM 5 minutes before it (bsub -wa, -wt), on which
# daskdeploy kills its worker jobs and exits.
#BSUB -wa TERM
#BSUB -wt 5
# Two cores on one host: the scheduler and the client need little (bsub -n, -R span).
#BSUB -n 2
#BSUB -R "span[hosts=1]"
# A 2 GB memory limit (bsub -M; the unit needs LSF 10.1.0.2 or later: on older clusters
# give a number in the unit of LSF_UNIT_FOR_LIMITS, KB by default).
#BSUB -M 2GB
# Queue (bsub -q; `bqueues` lists them) and project (bsub -P): only where your site asks
# for them.
##BSUB -q <queue>
##BSUB -P <project>

set -euo pipefail

# --- Your Python environment -------------------------------------------------------
# The worker jobs run the same Python as this job, so the environment must be on a
# file system that the compute nodes see (your home or project directory usually is).
# LSF gives the job the environment bsub runs in; load it here if that is not enough.
# Activation scripts sometimes use unset variables, hence the set +u / set -u.
set +u
# module load python/3.11                    # if your site uses environment modules
# source "$HOME/venvs/dask/bin/activate"     # a virtual environment, or:
# conda activate dask                        # a conda environment
set -u

# LSF starts the job in the directory bsub was run from, which it also puts in
# LS_SUBCWD ("Environment variables set for job execution"); say so explicitly.
cd "${LS_SUBCWD:-.}"

echo "Driver job ${LSB_JOBID:-?} on $(hostname) at $(date)"

# --- The run -----------------------------------------------------------------------
# 8 workers (or DASK_WORKERS, if set when you run bsub), each in its own 1-core, 1 GiB
# worker job with a 30-minute run limit. The summary line on stderr (in the output file
# above) names the deployment id:
#     daskdeploy: dd-xxxxxxxx on lsf: 8 workers x 1 thread, ...
# and `bjobs -J dd-xxxxxxxx` lists its worker jobs.
# Add --option queue=<queue> or --option account=<project> (the LSF project, bsub -P) if
# the worker jobs need them too; they do not inherit this job's #BSUB lines.
# --report ends the log with the workers' CPU efficiency and why, if it is low.
WORKERS="${DASK_WORKERS:-8}"
daskdeploy run --backend lsf --workers "$WORKERS" --option walltime=00:30:00 --report examples/pi.py

echo "Driver job done at $(date)"
