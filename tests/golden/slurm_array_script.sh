#!/usr/bin/env bash

#SBATCH -J dd-<id>
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH -t 00:30:00
#SBATCH --output=/shared/logs/%x-%A_%a.out
#SBATCH --comment=daskdeploy:dd-<id>
#SBATCH --array=0-2
DASKDEPLOY_WORKER_NAMES=(dd-1234abcd-0 dd-1234abcd-1 dd-1234abcd-2)
DASKDEPLOY_WORKER_DIR="$(mktemp -d "${TMPDIR:-${TMP:-/tmp}}/daskdeploy-dd-<id>-XXXXXX")"
trap 'rm -rf "$DASKDEPLOY_WORKER_DIR"' EXIT
trap 'exit 143' TERM INT HUP
export MALLOC_TRIM_THRESHOLD_=65536 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
/opt/env/bin/python -m distributed.cli.dask_worker tls://<scheduler-address>:<port> --name "${DASKDEPLOY_WORKER_NAMES[$SLURM_ARRAY_TASK_ID]}" --nthreads 1 --memory-limit 1.00GiB --nanny --death-timeout 60 --local-directory "$DASKDEPLOY_WORKER_DIR" --no-dashboard --preload-nanny 'import dask, os, signal; dask.config.set({"distributed.worker.multiprocessing-method": "fork"}); os.register_at_fork(after_in_child=lambda: (signal.signal(signal.SIGTERM, signal.SIG_DFL), signal.signal(signal.SIGINT, signal.default_int_handler), signal.set_wakeup_fd(-1)))' --protocol tls:// --tls-ca-file <credentials-dir>/ca.pem --tls-cert <credentials-dir>/cert.pem --tls-key <credentials-dir>/key.pem
