"""Checks of the topic pages that the console-block runner (test_tutorial) cannot make.

* ``docs/sites.rst``: every site profile in ``examples/sites/`` loads through dask config
  and the profile machinery, and ``daskdeploy run --dry-run`` accepts it, each option it
  sets shown as coming from it, so a gallery entry cannot rot.
* ``docs/notebooks.rst``: the cells the page shows run in a real Jupyter kernel, and what
  it says about ``client.close()``, a kernel restart and a kernel shutdown holds: the
  deployment's processes and files are gone each time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SITES = sorted((REPO / "examples" / "sites").glob("*.yaml"))
NOTEBOOKS = REPO / "docs" / "notebooks.rst"
SITES_PAGE = REPO / "docs" / "sites.rst"


# -- the site gallery ---------------------------------------------------------------------


def _settings(path: Path) -> list[tuple[list[str], dict]]:
    """What ``daskdeploy run`` flags deploy each entry of a site file, with its settings."""
    data = yaml.safe_load(path.read_text())["daskdeploy"]
    entries = []
    for name, settings in (data.pop("profiles", None) or {}).items():
        entries.append((["--profile", name], dict(settings)))
    for backend, settings in data.items():  # backend defaults: daskdeploy.<backend>.<option>
        entries.append((["--backend", backend], {"backend": backend, **settings}))
    return entries


def test_the_gallery_includes_every_site_file():
    page = SITES_PAGE.read_text()
    assert SITES, "examples/sites/ holds no site file"
    for path in SITES:
        assert f".. literalinclude:: ../examples/sites/{path.name}" in page, path.name


@pytest.mark.parametrize("path", SITES, ids=[path.stem for path in SITES])
def test_each_site_file_deploys_in_a_dry_run(sandbox, path):
    config_dir = Path(sandbox.env["DASK_CONFIG"])
    (config_dir / path.name).write_text(path.read_text())
    script = sandbox.script("analysis.py", "print('never run')\n")
    entries = _settings(path)
    assert entries, path
    for flags, settings in entries:
        result = sandbox.run(sandbox.command("run", *flags, "--dry-run", "--no-check", str(script)))
        output = result.stdout + result.stderr
        assert result.returncode == 0, (flags, output)
        assert f"Backend: {settings['backend']}" in output, output
        assert "Dry run: nothing was started." in output, output
        source = (
            f"(profile '{flags[1]}')"
            if flags[0] == "--profile"
            else f"(dask config daskdeploy.{flags[1]}."
        )
        for option in settings:
            if option == "backend":
                continue
            line = re.search(rf"^  {option} += (.*)$", output, re.M)
            assert line and source in line.group(1), (option, output)
    sandbox.assert_clean()


# -- notebooks ------------------------------------------------------------------------------


def notebook_cells() -> list[str]:
    """The python blocks of docs/notebooks.rst marked ``.. notebook: cell``, in order."""
    lines = NOTEBOOKS.read_text().splitlines()
    cells = []
    for number, line in enumerate(lines):
        if line.strip() != ".. notebook: cell":
            continue
        start = next(i for i in range(number + 1, len(lines)) if lines[i].strip())
        assert lines[start].strip() == ".. code-block:: python", f"notebooks.rst:{start + 1}"
        body = []
        for text in lines[start + 1 :]:
            if text.strip() and not text.startswith("   "):
                break
            body.append(text[3:])
        cells.append("\n".join(body).strip() + "\n")
    return cells


class Kernel:
    """A real Jupyter kernel started in the sandbox's environment."""

    def __init__(self, sandbox) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=sandbox.env, cwd=str(sandbox.root))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, cell: str) -> str:
        printed: list[str] = []

        def collect(message: dict) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        reply = self.client.execute_interactive(cell, timeout=120, output_hook=collect)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return "".join(printed)

    def pid(self) -> int:
        return self.manager.provisioner.process.pid

    def stop(self) -> None:
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=True)


def deployment_processes(sandbox, kernel: Kernel) -> list:
    """The sandbox's processes other than the kernel and its multiprocessing helper."""
    return [
        process
        for process in sandbox.processes()
        if process.pid != kernel.pid() and "resource_tracker" not in " ".join(process.cmdline())
    ]


def test_the_notebook_cells_run_and_each_ending_leaves_nothing(sandbox):
    import dask.array as da

    from conftest import wait_for

    expected = float(
        da.random.RandomState(7)
        .random_sample(1_000_000, chunks=100_000)
        .mean()
        .compute(scheduler="sync")
    )
    deploy_cell, compute_cell, close_cell = notebook_cells()
    for ending in ("close", "restart", "shutdown"):
        kernel = Kernel(sandbox)
        try:
            kernel.run(deploy_cell)
            assert len(deployment_processes(sandbox, kernel)) >= 2  # reaper and workers
            printed = kernel.run(compute_cell)
            mean = float(re.search(r"^mean (\S+)$", printed, re.M).group(1))
            assert abs(mean - expected) < 1e-12, printed
            if ending == "close":
                kernel.run(close_cell)
            elif ending == "restart":
                kernel.manager.restart_kernel(now=True)
                kernel.client.wait_for_ready(timeout=60)
            else:
                kernel.manager.shutdown_kernel(now=False)
            if ending != "shutdown":
                wait_for(
                    lambda kernel=kernel: not deployment_processes(sandbox, kernel),
                    30,
                    f"the deployment's processes to end after {ending}",
                )
        finally:
            kernel.stop()
        sandbox.assert_clean(timeout=30)
        assert not list((sandbox.cache_dir / "daskdeploy" / "deployments").glob("*.json"))
