"""The pbs, lsf, htcondor, oar and moab backends, on a machine that runs none of them.

Without their batch systems these backends are checked three ways:

* golden job scripts (``tests/golden/jobscript_<name>.txt``), reviewed line by line
  against each system's manual; each directive's citation is next to it in
  ``backends/<name>/system.py``. Regenerate them after an intended change with
  ``DASKDEPLOY_UPDATE_GOLDEN=1 pytest tests/test_batch_systems.py`` and review the diff;
* the parsers, on sample outputs in the formats the manuals, the systems' sources and
  public test suites show (each sample says where its format comes from);
* the error paths, with real processes and no mock of Python code: no client command on
  ``PATH``, and fake client commands (shell scripts named like the real ones, allowed for
  these five systems only) that refuse the job with the real command's words.
"""

from __future__ import annotations

import doctest
import importlib
import os
import re
import shlex
import stat
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import daskdeploy
from conftest import require_module
from daskdeploy import scratch
from daskdeploy.backends.htcondor.system import HTCONDOR, parse_condor_q
from daskdeploy.backends.lsf.system import LSF, format_hours_minutes, parse_bjobs
from daskdeploy.backends.moab.system import MOAB, parse_showq_xml
from daskdeploy.backends.oar.system import OAR, oarsub_args, parse_oarstat_json
from daskdeploy.backends.pbs.system import PBS, parse_qstat_full, sequence_number
from daskdeploy.errors import BackendUnavailableError, DeploymentError, OptionError
from daskdeploy.registry import get_backend

require_module("dask_jobqueue", extra="pbs")

GOLDEN = Path(__file__).parent / "golden"
SYSTEMS = ("pbs", "lsf", "htcondor", "oar", "moab")

#: One realistic directive per system, in its own syntax.
EXTRA_DIRECTIVE = {
    "pbs": "-m n",  # qsub(1B) -m n: no mail
    "lsf": "-x",  # bsub -x: exclusive execution
    "htcondor": "requirements = (OpSysMajorVer == 9)",  # htcondor-jdl(5) requirements
    "oar": "-t besteffort",  # oarsub(1) -t, as in dask-jobqueue's OARCluster docs
    "moab": "-l feature=haswell",  # msub -l, Moab's resource manager extension
}


def assert_matches_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DASKDEPLOY_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring to update it"


def job_script(name: str, **options: object) -> str:
    """The job script of a worker job, with the per-test cache directory as ``<cache>``."""
    plan = daskdeploy.plan(name, python="/opt/env/bin/python", **options)
    script = get_backend(name).job_script(plan.options)
    return script.replace(os.environ["XDG_CACHE_HOME"], "<cache>")


def golden_options(name: str) -> dict[str, object]:
    options: dict[str, object] = {
        "workers": 4,
        "processes": 2,
        "cores": 4,
        "memory": "8GB",
        "walltime": "01:30:00",
        "account": "proj42",
        "job_extra_directives": [EXTRA_DIRECTIVE[name]],
    }
    if name != "htcondor":  # HTCondor has no queues (see test_htcondor_refuses_a_queue)
        options["queue"] = "short"
    return options


@pytest.fixture(autouse=True)
def lsf_units_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LSFJob reads LSF_UNIT_FOR_LIMITS from $LSF_ENVDIR/lsf.conf: none here, so KB."""
    empty = tmp_path / "lsf-envdir"
    empty.mkdir()
    monkeypatch.setenv("LSF_ENVDIR", str(empty))
    monkeypatch.delenv("PBS_ACCOUNT", raising=False)  # PBSJob's fallback for -A


# --- job scripts -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SYSTEMS)
def test_job_script_matches_golden(name: str) -> None:
    assert_matches_golden(job_script(name, **golden_options(name)), f"jobscript_{name}.txt")


@pytest.mark.parametrize("name", SYSTEMS)
def test_every_job_is_named_after_the_deployment(name: str) -> None:
    script = job_script(name)
    named = {
        "pbs": "#PBS -N dd-<id>",
        "lsf": "#BSUB -J dd-<id>",
        "htcondor": "batch_name = dd-<id>",
        "oar": "#OAR -n dd-<id>",
        "moab": "#PBS -N dd-<id>",
    }
    assert named[name] in script
    assert "--lifetime 1620s --lifetime-stagger 45s" in script  # walltime 30 minutes


def test_lsf_time_limit_is_hours_and_minutes_rounded_up() -> None:
    assert "#BSUB -W 00:31" in job_script("lsf", walltime="00:30:10")
    assert [format_hours_minutes(s) for s in (59, 60, 3599, 3600, 100 * 3600)] == [
        "00:01",
        "00:01",
        "01:00",
        "01:00",
        "100:00",
    ]


def test_pbs_resource_spec_replaces_the_select_statement() -> None:
    script = job_script("pbs", resource_spec="nodes=1:ppn=4,mem=8gb")  # Torque's form
    assert "#PBS -l nodes=1:ppn=4,mem=8gb\n" in script
    assert "select=" not in script


def test_oar_memory_property_asks_for_memory_per_core() -> None:
    assert "#OAR -p" not in job_script("oar")
    script = job_script("oar", cores=4, memory="8GiB", memory_per_core_property_name="memcore")
    assert "#OAR -p memcore>=2048\n" in script  # MiB per core


def test_oar_script_becomes_oarsub_options_and_an_inline_command() -> None:
    args = oarsub_args(job_script("oar", queue="short"))
    assert args[:5] == ["oarsub", "-n", "dd-<id>", "-q", "short"]
    assert "-O" in args and args[args.index("-O") + 1].endswith("/%jobname%-%jobid%.out")
    command = args[-1]
    assert not any(line.startswith("#") for line in command.splitlines())
    assert "-m distributed.cli.dask_worker" in command


def test_htcondor_directives_are_submit_commands() -> None:
    script = job_script("htcondor", job_extra_directives=["batch_name = mine", "request_gpus=1"])
    assert "batch_name = mine\n" in script  # the user's command wins
    assert "batch_name = dd-<id>" not in script
    assert "request_gpus = 1\n" in script
    with pytest.raises(OptionError, match="submit commands such as"):
        job_script("htcondor", job_extra_directives=["request_gpus 1"])


def test_htcondor_refuses_a_queue() -> None:
    with pytest.raises(OptionError, match="HTCondor has no queues"):
        job_script("htcondor", queue="short")


def test_htcondor_skips_generated_lines_by_text() -> None:
    script = job_script("htcondor", job_directives_skip=["RequestDisk", "no such line"])
    assert "RequestDisk" not in script
    assert "RequestMemory" in script


def test_htcondor_workers_spill_to_the_job_scratch_directory() -> None:
    script = job_script("htcondor", job_script_prologue=["module load python"])
    assert '--local-directory ""$_CONDOR_SCRATCH_DIR""' in script
    # The user's prologue, then distributed's start-up variables, then the worker.
    assert "-c 'module load python; export MALLOC_TRIM_THRESHOLD_=65536 " in script
    assert "OPENBLAS_NUM_THREADS=1; /opt/env/bin/python" in script
    assert "mktemp" not in script


# --- parsers -----------------------------------------------------------------------------

# PBS Professional's qstat -f: "Job Id:" then indented "name = value" lines, long values
# continued on tab-indented lines cut anywhere (OpenPBS src/cmds/qstat.c, prt_attr). Shape
# and values from aiida-core's fixture tests/schedulers/fixtures/qstat-running.txt.
QSTAT_F_PBSPRO = """\
Job Id: 171390152.pbs01
    Job_Name = dd-1a2b3c4d
    Job_Owner = alice@login1.cluster
    resources_used.walltime = 00:00:10
    job_state = R
    queue = short
    exec_host = cpu-0686/24*2+cpu-0687/0*2
    Resource_List.select = 1:ncpus=1:mpiprocs=1:mem=524288000:job_tags=normal:j
\tobfs=104857600
    comment = Job run at Wed Jun 17 at 04:57 on (cpu-0686:ncpus=2)+(cpu-0687:
\tncpus=2)

Job Id: 171390153.pbs01
    Job_Name = dd-1a2b3c4d
    Job_Owner = alice@login1.cluster
    job_state = Q
    queue = short
    comment = Not Running: Insufficient amount of resource: ncpus (R: 4 A: 0 T: 28
\t8)

Job Id: 171390154.pbs01
    Job_Name = dd-1a2b3c4d
    Job_Owner = bob@login1.cluster
    job_state = R
"""

# Torque's qstat -f: the same layout, exec_host as host/slot-range (aiida-core,
# tests/schedulers/test_torque.py), C for a completed job kept for keep_completed.
QSTAT_F_TORQUE = """\
Job Id: 555716
    Job_Name = dd-1a2b3c4d
    Job_Owner = alice@host.domain
    job_state = R
    exec_host = r2i4n13/0-23+r1i2n12/0-23
    Output_Path = host:/down/the/path/tes
\tt_valg.out

Job Id: 555717
    Job_Name = dd-1a2b3c4d
    Job_Owner = alice@host.domain
    job_state = C
"""


def test_parse_qstat_full_pbs_professional() -> None:
    jobs = parse_qstat_full(QSTAT_F_PBSPRO, owner="alice")
    assert [(j.id, j.name, j.state, j.running) for j in jobs] == [
        ("171390152.pbs01", "dd-1a2b3c4d", "R", True),
        ("171390153.pbs01", "dd-1a2b3c4d", "Q", False),
    ]
    assert jobs[0].nodes == "cpu-0686,cpu-0687"
    assert jobs[0].reason == ""
    assert (
        jobs[1].reason == "Not Running: Insufficient amount of resource: ncpus (R: 4 A: 0 T: 288)"
    )
    assert jobs[1].describe().startswith("171390153.pbs01 Q (Not Running: Insufficient")
    assert len(parse_qstat_full(QSTAT_F_PBSPRO)) == 3  # every owner


def test_parse_qstat_full_torque() -> None:
    jobs = parse_qstat_full(QSTAT_F_TORQUE, owner="alice")
    assert [(j.id, j.state, j.nodes) for j in jobs] == [
        ("555716", "R", "r2i4n13,r1i2n12"),
        ("555717", "C", ""),
    ]
    assert "C" in PBS.gone_states and "C" in PBS.ending_states
    assert parse_qstat_full("") == []


def test_pbs_family_job_ids_are_kept_whole() -> None:
    def submitted(system: object, output: str) -> str:
        return re.search(system.job_id_pattern, output).group("job_id")

    # qsub(1B): "<sequence number>.<server name>"; msub: a blank line then the id (the
    # msub output in MatterMiners/tardis tests/adapters_t/sites_t/test_moab.py).
    assert submitted(PBS, "171390152.pbs01.example.org\n") == "171390152.pbs01.example.org"
    assert submitted(MOAB, "\n4761849\n") == "4761849"
    assert submitted(MOAB, "\nMoab.12\n") == "Moab.12"
    assert sequence_number("171390152.pbs01") == "171390152"
    logs = Path("/logs")
    assert PBS.output_files(logs, "dd-1", "17.pbs01") == [
        logs / "17.pbs01.OU",  # PBS Professional: <job ID>.OU in the -o directory
        logs / "dd-1.o17",  # Torque: <job name>.o<sequence number>
    ]


# bjobs -noheader -o "jobid stat exec_host job_name delimiter='|'": one job per line,
# "-" for an empty field (IBM Spectrum LSF 10.1, bjobs -o; sample values from aiida-core's
# tests/schedulers/test_lsf.py), exec_host as [slots*]host[:...].
BJOBS = """\
764254593|RUN|4*lxbsu2710:4*lxbsu2711|dd-1a2b3c4d
764220165|PEND|-|dd-1a2b3c4d
764255172|RUN|b68ac74822|other-job
"""


def test_parse_bjobs() -> None:
    jobs = parse_bjobs(BJOBS)
    assert [(j.id, j.name, j.state, j.nodes, j.running) for j in jobs] == [
        ("764254593", "dd-1a2b3c4d", "RUN", "lxbsu2710,lxbsu2711", True),
        ("764220165", "dd-1a2b3c4d", "PEND", "", False),
        ("764255172", "other-job", "RUN", "b68ac74822", True),
    ]
    # bjobs prints this and exits 0 when the user has no job (equinor/ert's LSF tests).
    assert parse_bjobs("No unfinished job found\n") == []
    output = "Job <764254593> is submitted to queue <normal>.\n"  # bsub's answer
    assert re.search(LSF.job_id_pattern, output).group("job_id") == "764254593"


# condor_q USER -af:t ClusterId ProcId JobStatus JobBatchName DaskDeployId RemoteHost
# HoldReason: tab-separated values, "undefined" for a missing attribute (condor_q(1),
# -autoformat; JobStatus codes from the HTCondor manual's "Job Status Codes").
CONDOR_Q = (
    "12\t0\t2\tdd-1a2b3c4d\tdd-1a2b3c4d\tslot1@node7.example.org\tundefined\n"
    "13\t0\t1\tdd-1a2b3c4d\tdd-1a2b3c4d\tundefined\tundefined\n"
    "14\t0\t5\tmy-renamed-batch\tdd-1a2b3c4d\tundefined\t"
    "Job has gone over memory limit of 2048 megabytes.\n"
    "15\t0\t2\tundefined\tundefined\tslot2@node8.example.org\tundefined\n"
)


def test_parse_condor_q() -> None:
    jobs = parse_condor_q(CONDOR_Q)
    assert [(j.id, j.name, j.state, j.tag, j.nodes, j.running) for j in jobs] == [
        ("12.0", "dd-1a2b3c4d", "Running", "dd-1a2b3c4d", "node7.example.org", True),
        ("13.0", "dd-1a2b3c4d", "Idle", "dd-1a2b3c4d", "", False),
        ("14.0", "my-renamed-batch", "Held", "dd-1a2b3c4d", "", False),
        ("15.0", "", "Running", "", "node8.example.org", True),
    ]
    assert jobs[2].reason == "Job has gone over memory limit of 2048 megabytes."
    assert HTCONDOR.tag_of(jobs[2]) == "dd-1a2b3c4d"  # found by its tag though renamed
    # condor_submit: "1 job(s) submitted to cluster 12." (HTCondor quick start guide);
    # the job is 12.0 (dask-jobqueue's HTCondorJob._job_id_from_submit_output).
    output = "Submitting job(s).\n1 job(s) submitted to cluster 12.\n"
    assert re.search(HTCONDOR.job_id_pattern, output).group("job_id") == "12"


# oarstat -u -J: a JSON object keyed by job id, with the keys of OAR 2.5's
# OAR::Stat::get_job_data (sources/core/common-libs/lib/OAR/Stat.pm, oar-team/oar).
OARSTAT_J = """\
{
   "4242" : {
      "Job_Id" : 4242,
      "name" : "dd-1a2b3c4d",
      "owner" : "alice",
      "state" : "Running",
      "assigned_network_address" : ["dahu-3.grenoble.grid5000.fr"],
      "queue" : "default",
      "message" : "R=4,W=1:30:0,J=B (Karma=0.000,quota_ok)"
   },
   "4243" : {
      "Job_Id" : 4243,
      "name" : "dd-1a2b3c4d",
      "owner" : "alice",
      "state" : "Waiting",
      "assigned_network_address" : [],
      "message" : "Cannot find enough resources which fit for the job 4243"
   }
}
"""


def test_parse_oarstat_json() -> None:
    jobs = parse_oarstat_json(OARSTAT_J)
    assert [(j.id, j.name, j.state, j.nodes, j.running) for j in jobs] == [
        ("4242", "dd-1a2b3c4d", "Running", "dahu-3.grenoble.grid5000.fr", True),
        ("4243", "dd-1a2b3c4d", "Waiting", "", False),
    ]
    assert jobs[1].reason.startswith("Cannot find enough resources")
    assert parse_oarstat_json("null\n") == parse_oarstat_json("{}") == parse_oarstat_json("") == []
    # OAR 3 (oar-team/oar3, oar/cli/oarstat.py): the job model's keys, "id" and "user".
    oar3 = '{"77": {"id": 77, "name": "dd-1a2b3c4d", "state": "Hold", "user": "alice"}}'
    assert [(j.id, j.name, j.state) for j in parse_oarstat_json(oar3)] == [
        ("77", "dd-1a2b3c4d", "Hold")
    ]
    assert re.search(OAR.job_id_pattern, "OAR_JOB_ID=4242\n").group("job_id") == "4242"


# showq --xml -w user=USER: <Data> documents (several, one after the other, in some
# versions) with <queue option="..."> lists of <job> elements (the showq output in
# MatterMiners/tardis tests/adapters_t/sites_t/test_moab.py).
SHOWQ_XML = """\
<Data>
 <Object>queue</Object>
 <cluster LocalActiveNodes="68" LocalIdleNodes="7" time="1553503935"/>
 <queue count="1" option="active">
  <job AWDuration="140875" Account="proj42" DRMJID="5096381.mg1.nemo.privat" JobID="5096381" JobName="dd-1a2b3c4d" MasterHost="n4545.nemo.privat" ReqProcs="4" State="Running" User="alice"/>
 </queue>
 <queue count="1" option="eligible">
  <job Account="proj42" JobID="4761849" JobName="dd-1a2b3c4d" ReqProcs="4" State="Idle" User="alice"/>
 </queue>
 <queue count="1" option="blocked">
  <job Account="proj42" JobID="4761850" JobName="dd-1a2b3c4d" ReqProcs="4" State="Deferred" User="alice"/>
 </queue>
</Data><Data>
 <Object>queue</Object>
 <queue count="0" option="active"/>
</Data>
"""  # noqa: E501


def test_parse_showq_xml() -> None:
    jobs = parse_showq_xml(SHOWQ_XML)
    assert [(j.id, j.name, j.state, j.nodes, j.running, j.reason) for j in jobs] == [
        ("5096381", "dd-1a2b3c4d", "Running", "n4545.nemo.privat", True, ""),
        ("4761849", "dd-1a2b3c4d", "Idle", "", False, ""),
        ("4761850", "dd-1a2b3c4d", "Deferred", "", False, "blocked"),
    ]
    assert parse_showq_xml("") == []


@pytest.mark.parametrize("name", SYSTEMS)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"daskdeploy.backends.{name}.system")
    failures, _ = doctest.testmod(module)
    assert failures == 0


# --- error paths, with real processes ----------------------------------------------------

#: What each system's submit command says when it refuses a job, and its exit status.
REFUSALS = {
    # OpenPBS qsub.c prints "qsub: <server message>" and exits with the PBS error number,
    # 15018 (PBSE_UNKQUE, "Unknown queue") modulo 256.
    "pbs": ("qsub", "", "qsub: Unknown queue", 170),
    # bsub, as equinor/ert's LSF driver tests record it.
    "lsf": ("bsub", "", "short: No such queue. Job not submitted.", 255),
    # condor_submit (src/condor_submit.V6/submit.cpp) and a submit requirement's reason
    # (HTCondor admin manual, "Submit Requirements").
    "htcondor": (
        "condor_submit",
        "Submitting job(s).",
        "\nERROR: Failed to commit job submission into the queue.\n"
        "ERROR: Jobs must request at most 64 GB of memory.",
        1,
    ),
    # OAR 2.5 OAR/IO.pm ("# Error: queue '...' does not exist", code -8, exit(-8)).
    "oar": ("oarsub", "", "# Error: queue 'short' does not exist", 248),
    # Moab's job submission code: "ERROR:    cannot submit job - cred limit reached".
    "moab": ("msub", "", "ERROR:    cannot submit job - cred limit reached", 1),
}


def write_command(directory: Path, name: str, body: str) -> None:
    """A shell script ``directory/name``, using shell built-ins only (PATH is bare)."""
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def fake_commands(directory: Path, name: str, *, submit: str) -> Path:
    """The system's client commands: ``submit`` as the submit command's body, a status
    command that lists no job, a cancel command that succeeds."""
    directory.mkdir()
    system = get_backend(name).system
    write_command(directory, system.submit_command, submit)
    write_command(directory, system.status_command, "exit 0")
    for command in (system.cancel_command, *system.other_commands):
        write_command(directory, command, "exit 0")
    return directory


def refusing_submit(name: str) -> str:
    _, stdout, stderr, status = REFUSALS[name]
    lines = ["while read -r _line; do :; done"]  # bsub reads the script on stdin
    if stdout:
        lines.append(f"printf '%s\\n' {shlex.quote(stdout)}")
    lines.append(f"printf '%s\\n' {shlex.quote(stderr)} >&2")
    lines.append(f"exit {status}")
    return "\n".join(lines)


def leftovers() -> list[str]:
    """Child processes, scratch directories and cached files a deployment may leave."""
    children = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
    mine = f"{scratch.PREFIX}dd-*-pid{os.getpid()}-*"  # this process's scratch directories
    scratch_dirs = [str(p) for p in Path(tempfile.gettempdir()).glob(mine)]
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "daskdeploy"
    found = cache.rglob("*") if cache.exists() else []
    files = [str(p) for p in found if p.is_file() or p.name.startswith("dd-")]  # + log dirs
    return children + scratch_dirs + files


def wait_for_no_leftovers(before: list[str], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [item for item in leftovers() if item not in before]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize("name", SYSTEMS)
def test_without_client_commands_the_backend_says_what_is_missing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = get_backend(name).system
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    availability = get_backend(name).available()
    assert not availability
    for command in system.client_commands:
        assert command in availability.reason
    assert system.install_hint in availability.reason
    before = leftovers()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as raised:
        daskdeploy.deploy(name, workers=1, quiet=True)
    assert time.monotonic() - started < 2.0
    message = str(raised.value)
    assert all(command in message for command in system.client_commands), message
    assert system.install_hint in message
    assert wait_for_no_leftovers(before) == []


@pytest.mark.parametrize("name", SYSTEMS)
def test_a_refused_submission_fails_fast_quoting_the_system(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = fake_commands(tmp_path / "bin", name, submit=refusing_submit(name))
    monkeypatch.setenv("PATH", str(bin_dir))
    queue = {} if name == "htcondor" else {"queue": "short"}
    before = leftovers()
    started = time.monotonic()
    with pytest.raises(DeploymentError) as raised:
        daskdeploy.deploy(name, workers=1, timeout=60, quiet=True, **queue)
    elapsed = time.monotonic() - started
    message = str(raised.value)
    refusal = REFUSALS[name][2].strip().splitlines()[-1]
    command = REFUSALS[name][0]
    # The system's own words, without the command's "qsub: " prefix, and what to check.
    assert refusal.removeprefix(f"{command}: ") in message, message
    assert message.startswith(f"{get_backend(name).system.title} refused the worker jobs:")
    if name in ("pbs", "lsf", "oar"):  # a queue refusal names the command listing queues
        assert "Hint: check the queue option" in message, message
    assert elapsed < 5, f"took {elapsed:.1f} s to report the refusal"
    assert wait_for_no_leftovers(before) == []


@pytest.mark.parametrize("name", SYSTEMS)
def test_cli_dry_run_shows_the_script_and_says_it_cannot_be_checked(
    name: str, sandbox, tmp_path: Path
) -> None:
    must_not_run = "echo 'must not run in a dry run' >&2\nexit 99"
    bin_dir = fake_commands(tmp_path / "bin", name, submit=must_not_run)
    system = get_backend(name).system
    write_command(bin_dir, system.cancel_command, must_not_run)
    sandbox.env["PATH"] = str(bin_dir)
    sandbox.env["LSF_ENVDIR"] = os.environ["LSF_ENVDIR"]
    script = sandbox.script("analysis.py", "raise SystemExit('must not run')\n")
    result = sandbox.run(
        sandbox.command("run", "--backend", name, "--dry-run", str(script)), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Job script:" in result.stdout
    assert "dd-<id>" in result.stdout
    assert (
        f"{system.title} cannot check a job script without submitting it; "
        f"{system.submit_command} will be given the script above." in result.stdout
    )
    assert "Dry run: nothing was started." in result.stdout
    assert "must not run" not in result.stdout + result.stderr
    sandbox.assert_clean(timeout=5)


def test_pbs_is_not_taken_for_grid_engine_whose_commands_share_its_names(tmp_path, monkeypatch):
    """Debian's gridengine-client installs qsub/qstat/qdel: those are not PBS's."""
    bin_dir = tmp_path / "bin"
    target = tmp_path / "usr" / "share" / "gridengine" / "gridengine-wrapper"
    target.parent.mkdir(parents=True)
    write_command(target.parent, target.name, "exit 0")
    bin_dir.mkdir()
    for name in ("qsub", "qstat", "qdel"):
        (bin_dir / name).symlink_to(target)
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in ("PBS_CONF_FILE", "PBS_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    status = daskdeploy.available_backends()["pbs"]
    assert not status and "Grid Engine's, not PBS's" in status.reason
    assert "Use the sge backend" in status.reason
