"""The fault table: a pytest plugin that collects fault cases into one case x backend table.

Tests tagged ``@pytest.mark.fault(case, backend)`` form one table: a fault (a killed
worker, a cancelled job, a signal, ...) on one backend. ``case`` and ``backend`` may name
the test's parameters in braces (``"{signum.name} to daskdeploy run"``). A tagged test
can report the time it measured with the ``record_fault`` fixture. Tests of the
:class:`~daskdeploy.testing.contract.BackendContract` suite are cases too, on the
backend their class names, without a marker. At the end of the session the terminal
summary prints the table (case x backend: passed, failed or skipped and the longest time
measured) and one line of counts:
``fault suite: N cases, P passed, F failed, X xfailed, S skipped``.

The columns are the backends of the registry (:func:`daskdeploy.registry.backend_names`:
the built-ins and every backend installed through the ``daskdeploy.backends`` entry
point), then any other backend a contract suite ran, then ``any`` (bad inputs that
concern no one backend); a backend for which no case ran has no column. Enable it from
a ``conftest.py``::

    pytest_plugins = ["daskdeploy.testing.faults"]

Cells where a case cannot happen are marked ``n/a`` when the conftest gives the reasons
(backend names are the conftest's to know)::

    def pytest_configure(config):
        from daskdeploy.testing import faults
        config.stash[faults.NOT_APPLICABLE] = {("job cancelled mid-run", "local"): "no SLURM job"}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

__all__ = [
    "CASES",
    "NOT_APPLICABLE",
    "FaultResult",
    "backend_columns",
    "fault_case",
    "record_fault",
    "record_fault_time",
]

#: Rows of the fault table, in the order they are printed.
CASES = (
    "worker SIGKILL mid-task",
    "job cancelled mid-run",
    "walltime expiry mid-run",
    "SIGINT to daskdeploy run",
    "SIGTERM to daskdeploy run",
    "kill -9 of the client",
    "two deployments at once",
    "bad input",
)
#: The column of bad inputs that concern no one backend.
ANY = "any"
#: Stash key of the cells where a case cannot happen: ``{(case, backend): reason}``.
NOT_APPLICABLE = pytest.StashKey[dict]()

_OUTCOMES = ("passed", "failed", "xfailed", "skipped")
_FAULT_KEY = pytest.StashKey["FaultResult"]()
_FAULT_RESULTS = pytest.StashKey[list]()
_CONTRACT_BACKENDS = pytest.StashKey[set]()


def fault_case(case: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a test method a case of the fault table, on its class's ``backend``.

    For suites whose backend is a class attribute (the contract suite): the test needs no
    marker, so the suite also runs where this plugin is not enabled.
    """
    if case not in CASES:
        raise ValueError(f"{case!r} is not a case of the fault table: {CASES}")

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        function.fault_case = case  # type: ignore[attr-defined]
        return function

    return mark


def backend_columns(seen: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The table's columns: registered backends, then others in ``seen``, then ``any``."""
    from daskdeploy.registry import backend_names

    columns = backend_names()
    columns += [b for b in dict.fromkeys(seen) if b not in columns and b != ANY]
    return [*columns, ANY]


class FaultResult:
    """Outcome and measured times of one fault case (one test).

    Attributes
    ----------
    case, backend
        The cell of the table.
    nodeid
        The test.
    outcome
        ``passed``, ``failed``, ``xfailed`` or ``skipped``; ``None`` before it ran.
    seconds
        The times the test recorded; the longest goes into the table.
    """

    def __init__(self, case: str, backend: str, nodeid: str):
        self.case = case
        self.backend = backend
        self.nodeid = nodeid
        self.outcome: str | None = None
        self.duration = 0.0  # of the test's call phase
        self.seconds: list[float] = []
        self.notes: list[str] = []
        self.over = False  # the fault outlasted the case's bound (the time is a minimum)

    def update(self, report: pytest.TestReport) -> None:
        """Take the outcome of one phase (setup, call, teardown) of the test."""
        if report.when == "call":
            self.duration = report.duration
        if report.failed:
            self.outcome = "failed"
        elif hasattr(report, "wasxfail") and report.skipped:
            self.outcome = "xfailed"  # a known bug, named in the test's xfail reason
            self.notes.append(f"known bug: {report.wasxfail}")
        elif report.skipped and self.outcome != "failed":
            self.outcome = "skipped"
        elif report.when == "call" and self.outcome is None:
            self.outcome = "passed"

    def record(self, seconds: float, note: str = "", over: bool = False) -> None:
        """Add a measured time; ``over``: the case gave up waiting after ``seconds``."""
        self.seconds.append(seconds)
        self.notes.append(note)
        self.over = self.over or over
        more = " or more" if over else ""
        print(f"\nfault: {self.case} on {self.backend}: {seconds:.2f} s{more} ({note})")

    @property
    def time(self) -> str:
        """The longest time the test recorded, or ``~`` and its whole duration."""
        if self.seconds:
            return f"{'>' if self.over else ''}{max(self.seconds):.1f}s"
        return f"~{self.duration:.1f}s" if self.outcome == "passed" else ""


def record_fault_time(
    item: pytest.Item, seconds: float, note: str = "", over: bool = False
) -> None:
    """Record a time measured by the fault case ``item``; nothing if it is none (or the
    plugin is not enabled)."""
    result = item.stash.get(_FAULT_KEY, None)
    if result is not None:
        result.record(seconds, note, over)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fault`` marker."""
    config.addinivalue_line(
        "markers",
        "fault(case, backend): the test is one case of the fault suite, printed in the table "
        f"at the end; case is one of {', '.join(CASES)}; backend a registered backend or "
        f"{ANY!r}. Both may name test parameters in braces.",
    )
    config.stash[_FAULT_RESULTS] = []
    config.stash[_CONTRACT_BACKENDS] = set()


def _case_of(item: pytest.Item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("fault")
    if marker is not None:
        params = getattr(getattr(item, "callspec", None), "params", {})
        case, backend = (str(arg).format(**params) for arg in marker.args)
        return case, backend
    case = getattr(getattr(item, "function", None), "fault_case", None)
    backend = getattr(getattr(item, "cls", None), "backend", None)
    if case is not None and isinstance(backend, str):
        item.config.stash[_CONTRACT_BACKENDS].add(backend)
        return case, backend
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every fault case names a row and a column of the table."""
    found = [(item, _case_of(item)) for item in items]
    # A contract suite's backend may be registered only while its tests run.
    backends = backend_columns(sorted(config.stash[_CONTRACT_BACKENDS]))
    for item, cell in found:
        if cell is None:
            continue
        case, backend = cell
        if case not in CASES or backend not in backends:
            raise pytest.UsageError(
                f"{item.nodeid}: fault({case!r}, {backend!r}) is not in the table: "
                f"cases {CASES}, backends {tuple(backends)}"
            )
        item.stash[_FAULT_KEY] = FaultResult(case, backend, item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Note each phase's outcome of a fault case."""
    report = yield
    result = item.stash.get(_FAULT_KEY, None)
    if result is not None:
        if report.when == "setup":
            item.config.stash[_FAULT_RESULTS].append(result)
        result.update(report)
    return report


@pytest.fixture
def record_fault(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``record_fault(seconds, note, over=False)``: report a time this fault case measured.

    It is printed (seen with ``-s``) and the longest one goes into the fault table.
    ``over``: the case gave up waiting after ``seconds``, the fault lasted longer.
    """
    result = request.node.stash.get(_FAULT_KEY, None)
    if result is None:
        pytest.fail("record_fault is for tests marked @pytest.mark.fault(case, backend)")
    return result.record


def _fault_cell(results: list[FaultResult], not_applicable: str | None) -> str:
    if not results:
        return "n/a" if not_applicable else "-"
    counts = {kind: sum(r.outcome == kind for r in results) for kind in _OUTCOMES}
    total = len(results)
    if counts["failed"]:
        text = f"FAIL {counts['failed']}/{total}"
    elif counts["xfailed"]:
        text = f"xfail {counts['xfailed']}/{total}" if total > 1 else "xfail"
    elif counts["passed"]:
        text = "pass" if total == 1 else f"{counts['passed']}/{total} pass"
    else:
        text = "skip" if total == 1 else f"skip {total}"
    times = [r for r in results if r.outcome != "skipped" and r.time]
    if times:
        longest = max(times, key=lambda r: float(r.time.strip("~>s")))
        text += f" {longest.time}"
    return text


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the fault table and the line of counts."""
    results: list[FaultResult] = config.stash.get(_FAULT_RESULTS, [])
    if not results:
        return
    not_applicable: dict = config.stash.get(NOT_APPLICABLE, {})
    # Registered backends with no case run (batch systems that cannot run here) stay out.
    ran = {r.backend for r in results if r.outcome is not None}
    backends = [b for b in backend_columns([r.backend for r in results]) if b in ran or b == ANY]
    not_applicable = {
        **{(case, ANY): "not a backend" for case in CASES if case != "bad input"},
        **not_applicable,
    }
    write = terminalreporter.write_line
    terminalreporter.section("fault suite")
    first = max(len(case) for case in CASES) + 2
    width = 17
    write(("case".ljust(first) + "".join(b.ljust(width) for b in backends)).rstrip())
    for case in CASES:
        row = case.ljust(first)
        for backend in backends:
            cell = [r for r in results if r.case == case and r.backend == backend]
            row += _fault_cell(cell, not_applicable.get((case, backend))).ljust(width)
        write(row.rstrip())
    write(
        "(n/a: cannot happen there, see tests/test_faults.py; -: not run; xfail: a known bug, "
        "see the list; time: the longest measured, > gave up waiting, ~ the whole test's)"
    )
    for r in results:
        if r.case != "bad input":
            note = "; ".join(n for n in r.notes if n)
            line = f"  {r.outcome or 'not run':7} {r.time:>7}  {r.case} / {r.backend}: {r.nodeid}"
            write(line + (f" ({note})" if note else ""))
    outcomes = [r.outcome or "skipped" for r in results]
    counts = ", ".join(f"{outcomes.count(kind)} {kind}" for kind in _OUTCOMES)
    bad = [r for r in results if r.case == "bad input"]
    among = f" (bad inputs: {len(bad)}, {sum(r.outcome == 'passed' for r in bad)} passed)"
    write(f"fault suite: {len(results)} cases, {counts}" + (among if bad else ""))
