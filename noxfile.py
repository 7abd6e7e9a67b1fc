"""Developer sessions: tests, lint, docs, demo and bench (`nox -s NAME`)."""

from __future__ import annotations

import os
import shutil

import nox

# venv + pip, not uv: in a uv-made environment the worker processes' imports of test
# modules cost three times the CPU (measured in the CPU-efficiency tests), which the
# efficiency report rightly counts.
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "docs"]


#: Programs the integration tests run for real, and the Debian package of each.
SYSTEM_PROGRAMS = {
    "slurmctld": "slurm-wlm",
    "slurmd": "slurm-wlm",
    "sbatch": "slurm-wlm",
    "munged": "munge",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ip": "iproute2",
    # MPICH comes from PyPI (the mpi extra); Debian's Open MPI is tested as the second MPI.
    "mpirun.openmpi": "openmpi-bin",
    # Son of Grid Engine: the daemons are in /usr/sbin, the clients in /usr/bin (Debian's
    # wrappers of the programs in /usr/lib/gridengine).
    "sge_qmaster": "gridengine-master",
    "sge_execd": "gridengine-exec",
    "qsub": "gridengine-client",
}

#: Without this debconf answer gridengine-common's postinst configures and starts a cell
#: of its own (/var/lib/gridengine/default); the tests build private cells instead.
GRIDENGINE_PRESEED = "gridengine-common shared/gridengineconfig boolean false"
#: While it exists, invoke-rc.d starts no service (the gridengine postinsts would).
POLICY_RC_D = "/usr/sbin/policy-rc.d"


def _missing_system_packages() -> list[str]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return sorted(
        {
            package
            for program, package in SYSTEM_PROGRAMS.items()
            if not shutil.which(program, path=search)
        }
    )


def _ensure_system_packages(session: nox.Session) -> None:
    """Install the real SLURM the tests need; as root with apt, else say what is missing."""
    missing = _missing_system_packages()
    if not missing:
        return
    can_install = (
        os.geteuid() == 0 and shutil.which("apt-get") and not os.environ.get("DASKDEPLOY_NO_APT")
    )
    if not can_install:
        session.warn(
            f"Missing system packages: {' '.join(missing)}. The tests that need them will be "
            f"skipped (and fail under CI). Install them with: "
            f"sudo apt-get install -y {' '.join(missing)}"
        )
        return
    session.log(f"Installing system packages the tests need: {' '.join(missing)}")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    if not any(package.startswith("gridengine-") for package in missing):
        session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)
        return
    session.run("sh", "-c", f"echo '{GRIDENGINE_PRESEED}' | debconf-set-selections", external=True)
    temporary_policy = not os.path.exists(POLICY_RC_D)
    if temporary_policy:
        with open(POLICY_RC_D, "w") as policy:
            policy.write("#!/bin/sh\n# written by noxfile.py during apt-get install\nexit 101\n")
        os.chmod(POLICY_RC_D, 0o755)
    try:
        session.run("apt-get", "install", "-y", "-qq", *missing, external=True, env=env)
    finally:
        if temporary_policy:
            os.remove(POLICY_RC_D)


@nox.session
def tests(session: nox.Session) -> None:
    """Install daskdeploy with every extra, and SLURM if missing (as root), then run the suite.

    The SLURM and sshd tests run real daemons. As root on Debian/Ubuntu the missing
    system packages are installed with apt-get (set DASKDEPLOY_NO_APT=1 to prevent it);
    otherwise the exact apt-get command is printed and those tests are skipped.
    """
    _ensure_system_packages(session)
    session.install("-e", ".[all,test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site with warnings as errors into docs/_build/html."""
    session.install("-e", ".[docs]")
    session.run(
        "python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session
def demo(session: nox.Session) -> None:
    """Run the main job: Monte Carlo pi on the local backend."""
    session.install("-e", ".")
    session.run("daskdeploy", "run", "examples/pi.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark (benchmarks/run_all.py): JSON, figures and a markdown report.

    Writes benchmarks/results/benchmarks.json and PNG figures; pass its options after
    ``--``, e.g. ``nox -s bench -- --smoke`` or ``nox -s bench -- --sections scaling``.
    Backends whose components are missing are reported as skipped.
    """
    session.install("-e", ".[all,bench]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
