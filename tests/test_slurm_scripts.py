"""Job scripts, time limits and option checks of the slurm backend: pure, no SLURM needed.

Golden files live in tests/golden/; regenerate them after an intended change with
``DASKDEPLOY_UPDATE_GOLDEN=1 pytest tests/test_slurm_scripts.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import daskdeploy
from conftest import require_module
from daskdeploy.backends.jobqueue.jobscript import as_array_script, worker_lifetime
from daskdeploy.backends.slurm.control import parse_walltime
from daskdeploy.backends.slurm.system import SLURM
from daskdeploy.options import adapt_range

SLURM_ARRAYS = {"arrays": SLURM.arrays, "directive_prefix": SLURM.directive_prefix}

GOLDEN = Path(__file__).parent / "golden"

require_module("dask_jobqueue", extra="slurm")


def assert_matches_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DASKDEPLOY_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring to update it"


def preview(**options: object) -> str:
    from daskdeploy.registry import get_backend

    plan = daskdeploy.plan("slurm", python="/opt/env/bin/python", **options)
    return get_backend("slurm").job_script(plan.options)


def test_job_script_matches_golden() -> None:
    script = preview(
        processes=2,
        threads_per_worker=2,
        memory_per_worker="2GiB",
        walltime="01:00:00",
        partition="debug",
        account="proj42",
        qos="short",
        job_extra_directives=["--constraint=skylake"],
        job_script_prologue=["module load python"],
        log_directory="/shared/logs",
    )
    assert_matches_golden(script, "slurm_job_script.sh")


def test_array_script_matches_golden() -> None:
    single = preview(log_directory="/shared/logs", lifetime="off").replace(
        "<worker-name>", "dd-1234abcd-0"
    )
    names = ["dd-1234abcd-0", "dd-1234abcd-1", "dd-1234abcd-2"]
    assert_matches_golden(
        as_array_script(single, names, names[0], **SLURM_ARRAYS), "slurm_array_script.sh"
    )


def test_array_script_needs_exactly_one_name_flag() -> None:
    with pytest.raises(ValueError, match="exactly once"):
        as_array_script("#SBATCH -J x\nrun --name other", ["a"], "a", **SLURM_ARRAYS)
    with pytest.raises(ValueError, match="no #SBATCH header"):
        as_array_script("run --name a", ["a"], "a", **SLURM_ARRAYS)


def test_default_script_cleans_worker_scratch_and_tags_the_job() -> None:
    script = preview()
    assert "#SBATCH -J dd-<id>" in script
    assert "--comment=daskdeploy:dd-<id>" in script
    assert "trap 'rm -rf \"$DASKDEPLOY_WORKER_DIR\"' EXIT" in script
    assert '--local-directory "$DASKDEPLOY_WORKER_DIR"' in script
    assert "--lifetime 1620s --lifetime-stagger 45s" in script  # walltime 30 min


def test_lifetime_off_and_explicit() -> None:
    assert "--lifetime" not in preview(lifetime="off")
    assert "--lifetime 600s --lifetime-stagger 120s" in preview(lifetime="10 minutes")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("5:30", 330),
        ("00:05:00", 300),
        ("2-00", 172800),
        ("1-02:03", 93780),
        ("1-02:03:04", 93784),
    ],
)
def test_parse_walltime_accepts_slurm_forms(text: str, seconds: int) -> None:
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize("text", ["UNLIMITED", "1h", "", "0", "1:2:3:4"])
def test_parse_walltime_rejects_other_text(text: str) -> None:
    what = "a positive time limit" if text == "0" else "a time limit such as '00:30:00'"
    with pytest.raises(ValueError, match=re.escape(f"expected {what}")) as info:
        parse_walltime(text)
    assert str(info.value).endswith(f"got {text!r}"), info.value


def test_worker_lifetime_leaves_a_margin_before_the_walltime() -> None:
    for walltime in (60, 300, 1800, 3600, 86400):
        life = worker_lifetime(walltime)
        latest = life.lifetime + life.stagger
        assert 0 < life.lifetime < walltime
        assert walltime - latest >= min(45, walltime // 4), (walltime, life)


def test_adapt_range_forms() -> None:
    assert adapt_range([0, 4]) == (0, 4)
    assert adapt_range("2:6") == (2, 6)
    assert adapt_range({"minimum": 1, "maximum": 2}) == (1, 2)
    for bad, message in (
        ([4, 2], "the minimum (4) is above the maximum (2)"),
        ([1], "expected [minimum, maximum] workers such as [0, 8] or '0:8', got [1]"),
        ("x", "expected [minimum, maximum] workers such as [0, 8] or '0:8', got 'x'"),
        ([0, 0], "the maximum must be at least 1 worker, got 0"),
    ):
        with pytest.raises(ValueError) as info:
            adapt_range(bad)
        assert str(info.value) == message


def test_bad_option_combinations_fail_before_anything_starts() -> None:
    with pytest.raises(daskdeploy.OptionError, match="multiple of processes"):
        daskdeploy.plan("slurm", cores=3, processes=2)
    with pytest.raises(daskdeploy.OptionError, match="threads_per_worker"):
        daskdeploy.plan("slurm", cores=4, threads_per_worker=1)
    with pytest.raises(daskdeploy.OptionError, match="either workers"):
        daskdeploy.plan("slurm", workers=2, adapt=[0, 4])
    with pytest.raises(daskdeploy.OptionError, match="walltime"):
        daskdeploy.plan("slurm", walltime="1 hour")


def test_jobqueue_names_are_accepted() -> None:
    plan = daskdeploy.plan("slurm", queue="gpu")
    assert plan.options["partition"] == "gpu"
    assert plan.options.sources["partition"] == "keyword argument"


def test_dry_run_describes_jobs_and_array() -> None:
    text = daskdeploy.plan("slurm", workers=6, processes=2).describe()
    assert "3 job(s) for 6 worker(s), submitted as one job array" in text
    assert "#SBATCH --cpus-per-task=2" in text


def test_unquoted_yaml_times_are_refused_or_understood() -> None:
    with pytest.raises(daskdeploy.OptionError, match="quote it in YAML"):
        daskdeploy.plan("slurm", walltime=43200)  # YAML's reading of an unquoted 12:00:00
    assert daskdeploy.plan("slurm", lifetime=False).options["lifetime"] == "off"


def test_jobqueue_settings_do_not_leak_into_the_job_script() -> None:
    import dask.config

    with dask.config.set(
        {"jobqueue.slurm.queue": "fromjq", "jobqueue.slurm.log-directory": "/jq/logs"}
    ):
        script = preview()
    assert "-p fromjq" not in script
    assert "/jq/logs" not in script
