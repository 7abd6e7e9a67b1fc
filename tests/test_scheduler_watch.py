"""The scheduler preload that ends schedulers nobody uses (real schedulers, loopback)."""

from __future__ import annotations

import asyncio
import time

import dask.config
import pytest
from distributed import Client, Scheduler

from daskdeploy.backends.shared.scheduler_watch import preload_text


@pytest.fixture(autouse=True)
def private_temporary_directory(tmp_path):
    """distributed writes a text preload under dask-scratch-space in dask's temporary
    directory; keep it out of the runner's $TMPDIR."""
    with dask.config.set({"temporary-directory": str(tmp_path)}):
        yield


async def _start(timeout: float) -> Scheduler:
    return await Scheduler(
        host="127.0.0.1", port=0, dashboard=False, preload=[preload_text(timeout)]
    )


def test_scheduler_closes_when_its_client_leaves() -> None:
    async def scenario() -> float:
        scheduler = await _start(30)
        async with Client(scheduler.address, asynchronous=True):
            await asyncio.sleep(0.2)
            assert scheduler.status.name == "running"
        left = time.monotonic()
        await asyncio.wait_for(scheduler.finished(), 10)
        return time.monotonic() - left

    assert asyncio.run(scenario()) < 5


def test_scheduler_closes_when_no_client_comes() -> None:
    async def scenario() -> float:
        started = time.monotonic()
        scheduler = await _start(1)
        await asyncio.wait_for(scheduler.finished(), 10)
        return time.monotonic() - started

    assert 0.9 < asyncio.run(scenario()) < 5


def test_text_survives_a_shell_command_line() -> None:
    text = preload_text(12.5)
    assert "'" not in text and "\n\n" not in text and "12.5" in text
    assert not text.endswith("\n")
