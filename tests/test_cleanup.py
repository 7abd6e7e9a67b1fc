"""Nothing is left behind: normal end, exceptions, SIGINT, SIGTERM, unguarded scripts.

Each case runs a real script in a subprocess with a private TMPDIR and a marker in its
environment (inherited by every worker process), then proves that no marked process
survives and that TMPDIR is empty.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time

import pytest

UNGUARDED = textwrap.dedent(
    """
    # Tutorial style: no `if __name__ == "__main__":` guard anywhere.
    import dask
    import daskdeploy

    print("TOP-LEVEL RUN", flush=True)
    client = daskdeploy.deploy(workers=2)

    def double(x):
        return 2 * x

    print("RESULT", sum(dask.compute(*[dask.delayed(double)(i) for i in range(10)])))
    """
)

LONG_RUNNING = textwrap.dedent(
    """
    import time
    import dask
    import daskdeploy

    def spin(seconds):
        end = time.time() + seconds
        while time.time() < end:
            pass
        return seconds

    client = daskdeploy.deploy(workers=2)
    futures = client.map(spin, [60, 60], pure=False)
    while sum(len(v) for v in client.processing().values()) < 2:
        time.sleep(0.05)
    print("READY", flush=True)
    client.gather(futures)
    """
)

RAISES = textwrap.dedent(
    """
    import daskdeploy

    client = daskdeploy.deploy(workers=2)
    assert client.submit(sum, [1, 2]).result() == 3
    raise RuntimeError("analysis failed")
    """
)


def _python(sandbox, script):
    return [sys.executable, str(script)]


def _daskdeploy_run(sandbox, script):
    return sandbox.command("run", "-n", "2", str(script))


LAUNCHERS = {"python": _python, "daskdeploy-run": _daskdeploy_run}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_unguarded_script_runs_once_and_cleans_up(sandbox, launcher):
    script = sandbox.script("unguarded.py", UNGUARDED)
    result = sandbox.run(LAUNCHERS[launcher](sandbox, script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("TOP-LEVEL RUN") == 1, result.stdout
    assert "RESULT 90" in result.stdout
    assert "bootstrapping phase" not in result.stderr
    # A clean close says nothing: no nanny restarting a worker it was told to stop.
    assert "WARNING" not in result.stderr, result.stderr
    sandbox.assert_clean()


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_exception_in_script_cleans_up(sandbox, launcher):
    script = sandbox.script("raises.py", RAISES)
    result = sandbox.run(LAUNCHERS[launcher](sandbox, script))
    assert result.returncode == 1
    assert "RuntimeError: analysis failed" in result.stderr
    sandbox.assert_clean()


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.fault("{signum.name} to daskdeploy run", "local")
def test_signal_during_computation_cleans_up_quickly(sandbox, launcher, signum, record_fault):
    script = sandbox.script("long.py", LONG_RUNNING)
    process = sandbox.popen(LAUNCHERS[launcher](sandbox, script))
    try:
        line = process.stdout.readline()
        assert line.strip() == "READY", process.stderr.read()
        sent = time.monotonic()
        process.send_signal(signum)
        status = process.wait(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()
    if signum == signal.SIGTERM:
        expected = 128 + signum  # daskdeploy's handler exits as a shell reports SIGTERM
    elif launcher == "python":
        # an uncaught KeyboardInterrupt: CPython ends itself with SIGINT, as a caller expects
        expected = -signum
    else:
        expected = 130  # daskdeploy run's status for SIGINT, as a shell's
    assert status == expected, status
    sandbox.assert_clean(timeout=10)
    record_fault(time.monotonic() - sent, f"{launcher}: to nothing left, exit {elapsed:.1f} s")
    assert elapsed < 10, f"took {elapsed:.1f} s to exit after signal {signum}"
