#!/usr/bin/env bash

#SBATCH -J dd-<id>
#SBATCH -p debug
#SBATCH -A proj42
#SBATCH -n 1
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH -t 01:00:00
#SBATCH --output=/shared/logs/%x-%j.out
#SBATCH --comment=daskdeploy:dd-<id>
#SBATCH --qos=short
#SBATCH --constraint=skylake
module load python
DASKDEPLOY_WORKER_DIR="$(mktemp -d "${TMPDIR:-${TMP:-/tmp}}/daskdeploy-dd-<id>-XXXXXX")"
trap 'rm -rf "$DASKDEPLOY_WORKER_DIR"' EXIT
trap 'exit 143' TERM INT HUP
export MALLOC_TRIM_THRESHOLD_=65536 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
/opt/env/bin/python -m distributed.cli.dask_worker tls://<scheduler-address>:<port> --name <worker-name> --nthreads 2 --memory-limit 2.00GiB --nworkers 2 --nanny --death-timeout 60 --local-directory "$DASKDEPLOY_WORKER_DIR" --no-dashboard --preload-nanny 'import dask, os, signal; dask.config.set({"distributed.worker.multiprocessing-method": "fork"}); os.register_at_fork(after_in_child=lambda: (signal.signal(signal.SIGTERM, signal.SIG_DFL), signal.signal(signal.SIGINT, signal.default_int_handler), signal.set_wakeup_fd(-1)))' --lifetime 3240s --lifetime-stagger 90s --protocol tls:// --tls-ca-file <credentials-dir>/ca.pem --tls-cert <credentials-dir>/cert.pem --tls-key <credentials-dir>/key.pem
