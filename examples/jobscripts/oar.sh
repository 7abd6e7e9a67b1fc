#!/bin/bash
# A driver job for daskdeploy's oar backend (OAR 2.5 and OAR 3).
#
# This small job runs your Python script, the Dask scheduler and the client. The Dask
# workers are NOT part of this job: daskdeploy submits them as separate OAR jobs from
# inside it, each named after the deployment (dd-xxxxxxxx). When the script finishes or
# fails, daskdeploy deletes those worker jobs (oardel). If this job is deleted or reaches
# its walltime, OAR ends it; daskdeploy then deletes the worker jobs if it gets the time
# to, or its reaper, a small process it left next to it, does (see "Ending worker jobs"
# in docs/how-it-works/batch-jobs.rst).
#
# This job's walltime bounds the whole run: it must cover the time the worker jobs wait
# in the queue plus the time your script needs.
#
# Make the file executable and submit it from the top of the daskdeploy checkout (or
# change the script path below) with -S, which makes oarsub read the #OAR lines
# (oarsub(1), -S/--scanscript):
#
#     chmod +x examples/jobscripts/oar.sh
#     oarsub -S ./examples/jobscripts/oar.sh
#
# Replace the <...> placeholders and delete what your site does not need. Lines starting
# with "#OAR" are oarsub options (oarsub(1), SCRIPT: "the same options" as the command
# line); "##OAR" lines are switched off (remove one '#' to use them). Keep comments on
# lines of their own: the rest of an #OAR line is read as options. Every option is in the
# manual page oarsub(1) (`man oarsub`).
#
# daskdeploy's oar backend has NOT been run against a real OAR server: its job scripts
# and error handling are tested, its runs are not. Please report what you find.

# The job's name, as oarstat shows it (oarsub -n).
#OAR -n dask-driver
# One node, 2 cores, and the walltime of this job, hours:minutes:seconds (oarsub -l).
# Longer than the workers' walltime (00:30:00 below).
#OAR -l /nodes=1/core=2,walltime=01:00:00
# Output and errors to dask-driver-<job id>.out/.err in the submit directory (oarsub
# -O/-E; %jobid% is replaced by the job id).
#OAR -O dask-driver-%jobid%.out
#OAR -E dask-driver-%jobid%.err
# Queue (oarsub -q; `oarnotify -l` lists them) and project (oarsub --project): only
# where your site asks for them.
##OAR -q <queue>
##OAR --project <project>

set -euo pipefail

# --- Your Python environment -------------------------------------------------------
# The worker jobs run the same Python as this job, so the environment must be on a
# file system that the compute nodes see (your home or project directory usually is).
# Do not count on the environment oarsub runs in reaching the job: load it here (or in
# your shell profile). Activation scripts sometimes use unset variables, hence the
# set +u / set -u.
set +u
# module load python/3.11                    # if your site uses environment modules
# source "$HOME/venvs/dask/bin/activate"     # a virtual environment, or:
# conda activate dask                        # a conda environment
set -u

# OAR starts the job in the directory oarsub was run from (oarsub -d: "default is
# current directory") and puts it in OAR_WORKDIR (oarsub(1), ENVIRONMENT); say so.
cd "${OAR_WORKDIR:-.}"

echo "Driver job ${OAR_JOB_ID:-?} on $(hostname) at $(date)"

# --- The run -----------------------------------------------------------------------
# 8 workers (or DASK_WORKERS, if set in the environment loaded above), each in its own
# 1-core worker job with a 30-minute walltime. The summary line on stderr (in the .err
# file above) names the deployment id:
#     daskdeploy: dd-xxxxxxxx on oar: 8 workers x 1 thread, ...
# and `oarstat -u` lists its worker jobs under that name.
# Add --option queue=<queue> or --option account=<project> (the OAR project, oarsub
# --project) if the worker jobs need them too; they do not inherit this job's #OAR lines.
# --report ends the log with the workers' CPU efficiency and why, if it is low.
WORKERS="${DASK_WORKERS:-8}"
daskdeploy run --backend oar --workers "$WORKERS" --option walltime=00:30:00 --report examples/pi.py

echo "Driver job done at $(date)"
