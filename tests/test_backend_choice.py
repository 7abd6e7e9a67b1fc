"""Which backend deploy() chooses, profiles, and the registry (no cluster started)."""

from __future__ import annotations

import textwrap
import time

import dask.config
import pytest

import daskdeploy
from daskdeploy import registry


def test_backend_precedence_argument_env_config_auto(monkeypatch):
    assert daskdeploy.plan().chosen_by == "default -> auto-detected"
    assert daskdeploy.plan().backend.name == "local"
    with dask.config.set({"daskdeploy.backend": "local"}):
        assert daskdeploy.plan().chosen_by == "dask config daskdeploy.backend"
        monkeypatch.setenv("DASKDEPLOY_BACKEND", "local")
        assert daskdeploy.plan().chosen_by == "environment variable DASKDEPLOY_BACKEND"
        assert daskdeploy.plan("local").chosen_by == "backend argument"


def test_unknown_backend_lists_known_backends_and_profiles(monkeypatch):
    daskdeploy.save_profile("bigmem", "local", workers=1)
    with pytest.raises(daskdeploy.UnknownBackendError) as info:
        daskdeploy.plan("lokal")
    message = str(info.value)
    assert "Did you mean 'local'?" in message
    assert "Known backends: local" in message and "bigmem" in message
    monkeypatch.setenv("DASKDEPLOY_BACKEND", "nonsense")
    with pytest.raises(daskdeploy.UnknownBackendError, match="DASKDEPLOY_BACKEND"):
        daskdeploy.plan()


def test_profile_round_trip(isolated_config):
    path = daskdeploy.save_profile("two", "local", workers=2, memory_per_worker="1GB")
    assert path.parent == isolated_config
    assert "two:" in path.read_text()
    assert daskdeploy.list_profiles()["two"] == {
        "backend": "local",
        "workers": 2,
        "memory_per_worker": "1GB",
    }
    by_name = daskdeploy.plan("two")
    assert by_name.profile == "two" and by_name.options["workers"] == 2
    assert by_name.options.sources["workers"] == "profile 'two'"
    overridden = daskdeploy.plan(profile="two", workers=1)
    assert overridden.options["workers"] == 1
    assert overridden.options["memory_per_worker"] == 10**9
    daskdeploy.delete_profile("two")
    assert "two" not in daskdeploy.list_profiles()


@pytest.mark.parametrize(
    ("name", "backend", "options", "fragment"),
    [
        ("local", "local", {}, "taken by a backend"),
        ("9lives", "local", {}, "Invalid profile name"),
        ("ok", "nope", {}, "Unknown backend"),
        ("ok", "local", {"workers": 0}, ">= 1"),
        ("ok", "local", {"cores": 4}, "Unknown option 'cores'"),
    ],
)
def test_bad_profiles_are_refused_before_saving(name, backend, options, fragment, isolated_config):
    with pytest.raises(daskdeploy.DaskDeployError, match=fragment):
        daskdeploy.save_profile(name, backend, **options)
    assert not (isolated_config / "daskdeploy-profiles.yaml").exists()


def test_unknown_and_malformed_profiles():
    with pytest.raises(daskdeploy.ConfigError, match="Unknown profile 'nope'"):
        daskdeploy.plan(profile="nope")
    with (
        dask.config.set({"daskdeploy.profiles.broken": {"workers": 2}}),
        pytest.raises(daskdeploy.ConfigError, match="'backend' key"),
    ):
        daskdeploy.plan("broken")


def test_profile_for_another_backend_is_refused():
    daskdeploy.save_profile("mine", "local", workers=1)
    with dask.config.set({"daskdeploy.profiles.other": {"backend": "elsewhere"}}):
        with pytest.raises(daskdeploy.UnknownBackendError, match="is for backend 'elsewhere'"):
            daskdeploy.plan("local", profile="other")
        with pytest.raises(daskdeploy.UnknownBackendError, match="Unknown backend 'elsewhere'"):
            daskdeploy.plan("other")


def test_available_backends_reports_local():
    statuses = daskdeploy.available_backends()
    assert statuses["local"].available and statuses["local"].kind == "cluster"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install a real distribution with two entry points: a working backend and a broken one."""
    (tmp_path / "tiny_backend.py").write_text(
        textwrap.dedent(
            """
            from daskdeploy.backends.base import Availability, Backend, Running
            from daskdeploy.options import Option, boolean, whole_number

            class ThreadsBackend(Backend):
                name = "inprocess"
                summary = "threads in this process"
                extra_options = (Option("fast", boolean, "go fast"),
                                 Option("missing", whole_number(0), "workers never started"))
                defaults = {"workers": 1, "threads_per_worker": 2, "quiet": True,
                            "fast": True, "missing": 0}

                def available(self):
                    return Availability.ok("always")

                def start(self, options, context):
                    from distributed import LocalCluster
                    cluster = LocalCluster(n_workers=options["workers"], processes=False,
                                           threads_per_worker=options["threads_per_worker"],
                                           dashboard_address=None,
                                           local_directory=str(context.scratch_dir))
                    return Running(cluster.scheduler_address, cluster=cluster,
                                   expected_workers=options["workers"] + options["missing"])
            """
        )
    )
    dist = tmp_path / "tiny_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[daskdeploy.backends]\n"
        "inprocess = tiny_backend:ThreadsBackend\n"
        "broken = tiny_backend_missing:Nothing\n"
        "local = tiny_backend:ThreadsBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_point_targets.cache_clear()
    registry._load.cache_clear()
    yield tmp_path
    registry._entry_point_targets.cache_clear()
    registry._load.cache_clear()


def test_entry_point_backends_join_the_registry(installed_plugin):
    statuses = daskdeploy.available_backends()
    assert statuses["inprocess"].available and statuses["inprocess"].reason == "always"
    assert not statuses["broken"].available
    assert "tiny_backend_missing" in statuses["broken"].reason
    assert registry.BUILTIN_BACKENDS["local"] in registry._targets()["local"]
    plan = daskdeploy.plan("inprocess")
    assert plan.options["threads_per_worker"] == 2 and plan.options["fast"] is True
    assert plan.options["timeout"] == 60 and plan.options.sources["timeout"] == "default"
    with daskdeploy.deploy("inprocess") as client:
        assert client.submit(sum, [1, 2]).result() == 3
    with pytest.raises(daskdeploy.UnknownBackendError, match="failed to load"):
        daskdeploy.plan("broken")


def test_workers_that_never_connect_give_a_clear_error_and_nothing_left(installed_plugin):
    from daskdeploy import lifecycle

    started = time.monotonic()
    with pytest.raises(daskdeploy.DeploymentError, match=r"Only 1 of 2 workers .* within 1 s"):
        daskdeploy.deploy("inprocess", missing=1, timeout=1)
    assert time.monotonic() - started < 10
    assert lifecycle.live() == []


def test_cli_lists_plugins_and_reports_a_failed_start_with_status_1(installed_plugin, sandbox):
    sandbox.env["PYTHONPATH"] = str(installed_plugin)
    listed = sandbox.run(sandbox.command("backends"), timeout=30)
    assert "inprocess" in listed.stdout and "tiny_backend_missing" in listed.stdout
    script = sandbox.script("never.py", "raise SystemExit('must not run')\n")
    args = ["run", "-b", "inprocess", "-o", "missing=1", "-o", "timeout=1", str(script)]
    result = sandbox.run(sandbox.command(*args), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Only 1 of 2 workers" in result.stderr and "Traceback" not in result.stderr
    assert "must not run" not in result.stderr
    sandbox.assert_clean()
