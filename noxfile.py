"""Developer sessions: tests, lint, docs, demo and bench (`nox -s NAME`)."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "docs"]


@nox.session
def tests(session: nox.Session) -> None:
    """Install daskdeploy with every extra and run the whole test suite."""
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
    """Run the benchmarks and write their results under benchmarks/results/."""
    session.install("-e", ".[all]")
    session.run("python", "benchmarks/bench_local.py", *session.posargs)
