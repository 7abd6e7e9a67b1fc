"""Reading a SLURM job's environment (pure, no SLURM needed)."""

from __future__ import annotations

import pytest

from daskdeploy.backends.slurm.environment import Allocation, parse_tasks_per_node

BATCH = {
    "SLURM_JOB_ID": "42",
    "SLURM_NTASKS": "3",
    "SLURM_CPUS_PER_TASK": "2",
    "SLURM_TASKS_PER_NODE": "2,1",
    "SLURM_MEM_PER_CPU": "500",
    "SLURM_PROCID": "0",  # the batch step has it too, but no SLURM_STEP_ID
}


def test_tasks_per_node_forms() -> None:
    assert parse_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert parse_tasks_per_node("4") == [4]
    with pytest.raises(ValueError, match=r"^cannot read SLURM_TASKS_PER_NODE='2\(y3\)'$"):
        parse_tasks_per_node("2(y3)")


def test_batch_step() -> None:
    allocation = Allocation.from_environ(BATCH)
    assert (allocation.ntasks, allocation.cpus_per_task) == (3, 2)
    assert allocation.tasks_per_node == (2, 1)
    assert allocation.memory_per_task == 2 * 500 * 2**20
    assert not allocation.in_step and allocation.rank == 0


def test_srun_task_and_memory_per_node() -> None:
    env = {**BATCH, "SLURM_STEP_ID": "0", "SLURM_PROCID": "2", "SLURM_MEM_PER_NODE": "1000"}
    del env["SLURM_MEM_PER_CPU"]
    allocation = Allocation.from_environ(env)
    assert allocation.in_step and allocation.rank == 2
    assert allocation.memory_per_task == 1000 * 2**20 // 2  # the busiest node's share


def test_defaults_and_outside_a_job() -> None:
    allocation = Allocation.from_environ({"SLURM_JOB_ID": "7"})
    assert (allocation.ntasks, allocation.cpus_per_task, allocation.memory_per_task) == (1, 1, None)
    with pytest.raises(ValueError, match="SLURM_JOB_ID"):
        Allocation.from_environ({})
