"""Run every daskdeploy benchmark in one go: JSON, PNG figures and a markdown report.

    python benchmarks/run_all.py [--smoke] [--repeats 5] [--backends local,slurm,...]
                                 [--sections startup,workloads,scaling,imports,adoption,workers]
                                 [--max-workers N] [--out benchmarks/results]
                                 [--publish docs/benchmarks]
    python benchmarks/run_all.py --from-json benchmarks/results/benchmarks.json
                                 [--publish docs/benchmarks]

Sections (all by default, in this order):

* ``startup``: deploy until every worker is connected, then close until nothing is left,
  daskdeploy against the raw library (its "peer") on every available backend
  (``startup.py``);
* ``workloads``: the four examples on every available backend (``workloads.py``);
* ``scaling``: strong scaling of a GIL-bound and a NumPy workload on this machine,
  daskdeploy ``local`` against Dask's threaded and multiprocessing schedulers and a plain
  ``multiprocessing.Pool`` (``scaling.py``);
* ``imports``: ``import daskdeploy`` against ``import distributed`` (``imports.py``);
* ``adoption``: what adoption costs a script that makes no cluster (``adoption.py``);
* ``workers``: 1, 16 and 64 workers on a private SLURM cluster, time to connect and
  start-up CPU per worker, against dask-jobqueue (``workers.py``).

Backends that cannot run here are reported as skipped, with the reason. This is a
benchmark, not a test: it exits 0 whether or not the targets are met. :func:`main` returns
the dictionary it writes to ``<out>/benchmarks.json``.

``--publish DIR`` puts a run into the documentation (:func:`publish`): a copy of the JSON
without this machine's paths or user name, the figures, and ``results.inc``, the same
tables as the markdown report in reStructuredText (:func:`format_rst`), which
``docs/benchmarks.rst`` includes. ``--from-json PATH`` re-uses a saved run instead of
running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import getpass
import importlib
import json
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sections import each other as top-level modules
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    OPTIONAL_VERSIONS,
    LoadMeter,
    background_note,
    loadavg,
    machine_info,
    median,
)

__all__ = ["format_report", "format_rst", "main", "publish", "report_blocks", "sanitize"]

BACKENDS = ("local", "slurm", "allocation", "ssh", "mpi")
ENV_SECTIONS = ("startup", "workloads")
"""Sections that run on the backends' environments (``environments.backends``)."""
SECTIONS = (*ENV_SECTIONS, "scaling", "imports", "adoption", "workers")
DEFAULT_OUT = HERE / "results"
DEFAULT_REPEATS = 5
STARTUP_TARGET = 1.05
"""Maximum ratio of median totals (start + close), daskdeploy / raw peer."""


# -------------------------------------------------------------------------- options


def _names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = sorted(set(names) - set(allowed))
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)} (got {text!r})")
        return list(dict.fromkeys(names))

    return parse


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_all.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and 1 repeat: checks that everything runs (well under a minute)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed runs per measurement; medians are reported (default {DEFAULT_REPEATS}, "
        "1 with --smoke)",
    )
    parser.add_argument(
        "--backends",
        type=_names(BACKENDS),
        default=list(BACKENDS),
        help=f"comma-separated backends for startup and workloads (default {','.join(BACKENDS)})",
    )
    parser.add_argument(
        "--sections",
        type=_names(SECTIONS),
        default=list(SECTIONS),
        help=f"comma-separated sections to run (default {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="largest worker count of the scaling sweep (default: the usable cores)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"directory for benchmarks.json and the PNG figures (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="run nothing: print the report of the run saved in PATH (a benchmarks.json); "
        "with --publish, publish that run",
    )
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        metavar="DIR",
        help="publish the run into the docs (e.g. docs/benchmarks): a sanitized "
        "benchmarks.json, the PNG figures and results.inc, the RST tables",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else DEFAULT_REPEATS
    if args.repeats < 1 or (args.max_workers is not None and args.max_workers < 1):
        parser.error("--repeats and --max-workers must be at least 1")
    return args


# ------------------------------------------------------------------------- sections


def _guarded(name: str, notes: list[str], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one section; an exception becomes ``{"error": ...}`` and a note, not a crash."""
    print(f"== {name}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        section = run()
    except Exception as exc:
        notes.append(f"{name}: failed: {exc!r}")
        traceback.print_exc()
        section = {"error": repr(exc)}
    section.setdefault("wall_seconds", time.perf_counter() - t0)
    return section


def _run_section(
    name: str, args: argparse.Namespace, meter: LoadMeter, notes: list[str], envs: Any = None
) -> dict[str, Any]:
    """Import section ``name`` (a module of this directory) and call its ``run``."""
    module = importlib.import_module(name)
    options: dict[str, Any] = {
        "repeats": args.repeats,
        "smoke": args.smoke,
        "meter": meter,
        "notes": notes,
    }
    if name == "scaling":
        options["max_workers"] = args.max_workers
    return module.run(envs, **options) if name in ENV_SECTIONS else module.run(**options)


def _run_env_sections(args: argparse.Namespace, meter: LoadMeter, notes: list[str]) -> dict:
    """Start the backends' environments once and run startup and workloads on them."""
    wanted = [name for name in ENV_SECTIONS if name in args.sections]
    if not wanted:
        return {}
    try:
        import environments
    except Exception as exc:  # the module is missing or broken: report, go on
        reason = f"benchmarks/environments.py cannot be imported: {exc!r}"
        notes.append(reason)
        skipped = dict.fromkeys(args.backends, reason)
        return {name: {"error": reason, "skipped": skipped} for name in wanted}
    results: dict[str, Any] = {}
    with environments.backends(args.backends, smoke=args.smoke, notes=notes) as envs:
        skipped = environments.skipped(envs)
        for name in wanted:
            run = functools.partial(_run_section, name, args, meter, notes, envs)
            results[name] = _guarded(name, notes, run)
            results[name].setdefault("skipped", skipped)
    return results


def _run_local_sections(args: argparse.Namespace, meter: LoadMeter, notes: list[str]) -> dict:
    """Run the sections that need no backend environment: scaling, imports, adoption."""
    return {
        name: _guarded(name, notes, functools.partial(_run_section, name, args, meter, notes))
        for name in SECTIONS
        if name in args.sections and name not in ENV_SECTIONS
    }


# -------------------------------------------------------------------------- targets


def _startup_targets(section: dict[str, Any]) -> list[dict[str, Any]]:
    """One target per backend from the startup section's ``ratio.total``."""
    default = section.get("target", STARTUP_TARGET)
    rows = []
    for name, entry in section.get("backends", {}).items():
        target = entry.get("target", default)
        value = entry.get("ratio", {}).get("total")
        rows.append(
            {
                "name": f"startup: {name} vs {entry.get('raw_peer', 'raw')} (start + close)",
                "target": f"<= {target}",
                "value": value,
                "met": None if value is None else value <= target,
            }
        )
    for name, reason in section.get("skipped", {}).items():
        rows.append(
            {
                "name": f"startup: {name}",
                "target": f"<= {default}",
                "value": None,
                "met": None,
                "note": f"skipped: {reason}",
            }
        )
    return rows


def collect_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the sections that ran: ``name``, ``target``, ``value``, ``met``.

    The startup section's are derived from its per-backend ratios; the other sections
    list their own under ``targets``.
    """
    targets: list[dict[str, Any]] = []
    for name in SECTIONS:
        section = result.get(name)
        if not isinstance(section, dict):
            continue
        if "targets" in section:
            targets += section["targets"]
        elif name == "startup":
            targets += _startup_targets(section)
    return targets


# ------------------------------------------------------------------------ reporting
#
# report_blocks() decides every heading, table row and line of the report, once;
# format_report() writes those blocks as markdown (stdout) and format_rst() as
# reStructuredText (the fragment of the docs' benchmarks page, written by publish()).


@dataclasses.dataclass(frozen=True)
class Code:
    """Inline code in a table cell: in backquotes in markdown, a literal in RST."""

    text: str


Cell = str | Code


@dataclasses.dataclass(frozen=True)
class Heading:
    """A section heading (``##`` in markdown, the given underline in RST)."""

    text: str


@dataclasses.dataclass(frozen=True)
class Table:
    """A table; without ``header`` the first column names the rows (RST only)."""

    header: Sequence[str] | None
    rows: Sequence[Sequence[Cell]]


@dataclasses.dataclass(frozen=True)
class Text:
    """A paragraph; a ``tight`` one follows the previous block without a blank line in
    markdown."""

    text: str
    tight: bool = False


@dataclasses.dataclass(frozen=True)
class Item:
    """One bullet; consecutive items make one list."""

    text: str


Block = Heading | Table | Text | Item


def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{format(value, spec)}{suffix}"


def _mark(met: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: "n/a"}[met]


def _note(target: dict[str, Any]) -> str:
    return f" ({target['note']})" if target.get("note") else ""


def _targets_blocks(result: dict[str, Any]) -> list[Block]:
    rows = [
        [t["name"], t["target"], _fmt(t["value"]), _mark(t["met"]) + _note(t)]
        for t in result["targets"]
    ]
    return [Heading("Targets"), Table(["measure", "target", "value", "result"], rows)]


def _startup_blocks(section: dict[str, Any]) -> list[Block]:
    rows: list[list[Cell]] = []
    tls, plain_runs = [], []
    for name, entry in section.get("backends", {}).items():
        m, r = entry.get("medians", {}), entry.get("ratio", {})
        dd, raw = m.get("daskdeploy", {}), m.get("raw", {})
        rows.append(
            [
                name,
                str(entry.get("raw_peer", "")),
                str(entry.get("workers", "")),
                *(_fmt(side.get(key)) for key in ("start", "close") for side in (dd, raw)),
                _fmt(r.get("total"), ".3f", "x"),
                f"<= {entry.get('target', section.get('target', STARTUP_TARGET))} "
                f"{_mark(entry.get('pass'))}",
                _fmt(entry.get("ratio_plain", {}).get("total"), ".3f", "x"),
            ]
        )
        if entry.get("security", {}).get("daskdeploy") == "tls":
            tls.append(name)
            plain_runs.append(len(entry.get("runs", {}).get("daskdeploy_plain", [])))
    header = ["backend", "raw peer", "workers", "start dd s", "start raw s"]
    header += ["close dd s", "close raw s", "total ratio", "target"]
    header += ["total ratio, dd tls=False"]
    blocks: list[Block] = [Heading("Start-up + close (median seconds)"), Table(header, rows)]
    if tls:
        counts = sorted(set(plain_runs))
        runs = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        blocks.append(
            Text(
                f"daskdeploy (dd) used TLS, its default, on {', '.join(tls)}; every raw peer "
                "uses plain TCP. The last column compares daskdeploy with tls=False (median "
                f"of {runs} runs) to the same raw peer."
            )
        )
    return blocks


def _workloads_blocks(section: dict[str, Any]) -> list[Block]:
    backends = {name: entry for name, entry in section.get("backends", {}).items() if entry}
    examples = sorted({example for entry in backends.values() for example in entry})

    def rows(key: str) -> list[list[Cell]]:
        table: list[list[Cell]] = []
        for example in examples:
            cells: list[Cell] = [example]
            for entry in backends.values():
                run = entry.get(example)
                if not run:
                    cells.append("-")
                else:
                    failed = "" if run.get("ok") else " FAILED"
                    cells.append(_fmt(run.get(key), ".2f", " s") + failed)
            table.append(cells)
        return table

    header = ["example", *backends]
    blocks: list[Block] = [Heading("Examples (median seconds)"), Table(header, rows("median"))]
    if "repeats" in section:
        asked = section.get("repeats_asked", section["repeats"])
        blocks.append(
            Text(
                f"{section['repeats']} run per example and backend"
                + (f" ({asked} asked)" if asked != section["repeats"] else "")
                + f", {section.get('workers', '?')} workers: the wall time of the whole "
                "daskdeploy run command (interpreter start, deployment, compute, teardown)"
            )
        )
    if any(run.get("compute_median") is not None for e in backends.values() for run in e.values()):
        blocks += [
            Heading("Examples: compute time printed by the example (median seconds)"),
            Table(header, rows("compute_median")),
        ]
    return blocks


def _scaling_blocks(section: dict[str, Any]) -> list[Block]:
    blocks: list[Block] = []
    ks = section.get("workers", [])
    for workload, data in section.get("workloads", {}).items():
        methods = data["methods"]
        rows: list[list[Cell]] = []
        for i, k in enumerate(ks):
            cells = [
                f"{_fmt(entry['median'][i])} ({_fmt(entry['speedup'][i], '.2f')}x, "
                f"{_fmt(entry['speedup_vs_pool1'][i], '.2f')}x)"
                for entry in methods.values()
            ]
            rows.append([str(k), f"{data['ideal'][i]}x", *cells])
        blocks += [
            Heading(f"Scaling: {workload} (median s (speed-up over own k=1, over Pool(1)))"),
            Table(["k", "ideal", *methods], rows),
        ]
    sizes = section.get("sizes")
    if sizes:
        blocks.append(
            Text(
                f"gil: {sizes['tasks']} tasks of busy_sum({sizes['n']:,}); pi: {sizes['chunks']} "
                f"chunks of {sizes['chunk']:,} points; {section.get('cores')} usable cores"
            )
        )
    return blocks


def _imports_blocks(section: dict[str, Any]) -> list[Block]:
    rows: list[list[Cell]] = [
        [
            Code(f'python -c "{statement}"'),
            _fmt(section["median"].get(name)),
            _fmt(section["net_median"].get(name)) if name in section["net_median"] else "",
        ]
        for name, statement in section.get("statements", {}).items()
    ]
    return [
        Heading(f"Import time (median of {section.get('runs')} fresh interpreters)"),
        Table(["command", "wall s", "minus bare interpreter s"], rows),
        Text(f"ratio {_fmt(section.get('ratio'))} (net {_fmt(section.get('net_ratio'))})"),
    ]


def _workers_blocks(section: dict[str, Any]) -> list[Block]:
    import workers

    settings = section.get("settings", {})
    return [
        Heading(
            "Workers on SLURM: time to connect N and start-up CPU per worker "
            f"(median of {settings.get('repeats')} per side, alternating)"
        ),
        Table(
            [
                "N",
                "connected s",
                "raw s",
                "ratio",
                "CPU s per worker",
                "raw CPU s",
                "CPU ratio",
            ],
            workers.rows(section),
        ),
        Text(
            f"LocalSlurm {settings.get('nodes')} nodes x {settings.get('cpus_per_node')} CPUs; "
            "one worker per job (1 core); raw: dask_jobqueue.SLURMCluster with its defaults; "
            "CPU: user + system of the job's nanny and worker processes until connected"
        ),
    ]


def _adoption_blocks(section: dict[str, Any]) -> list[Block]:
    rows: list[list[Cell]] = [
        [label, _fmt(section["median"].get(side))]
        for side, label in (("adopting", "with adoption"), ("before", "before adoption"))
    ]
    return [
        Heading(f"Adoption's cost (median of {section.get('runs')} runs each, alternating)"),
        Text(
            f"command: {section.get('command', '')}; before adoption: commit "
            f"{str(section.get('baseline', ''))[:10]}"
        ),
        Table(["code", "wall s"], rows),
        Text(
            f"ratio {_fmt(section.get('ratio'))}; installing and removing the hooks "
            f"{_fmt(section.get('hooks_us'), '.0f')} us"
        ),
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[Block]]] = {
    "startup": _startup_blocks,
    "workloads": _workloads_blocks,
    "scaling": _scaling_blocks,
    "imports": _imports_blocks,
    "adoption": _adoption_blocks,
    "workers": _workers_blocks,
}


def report_blocks(result: dict[str, Any]) -> list[Block]:
    """The report as blocks: the targets, a table per section, the load and the notes.

    Both :func:`format_report` (markdown) and :func:`format_rst` render exactly these.
    """
    blocks = _targets_blocks(result)
    for name, render in RENDERERS.items():
        section = result.get(name)
        if not isinstance(section, dict):
            continue
        if "error" in section:
            blocks += [Heading(name), Text(f"failed: {section['error']}", tight=True)]
            continue
        blocks += render(section)
        skipped = section.get("skipped") or {}
        blocks += [Item(f"{backend} skipped: {reason}") for backend, reason in skipped.items()]
    blocks.append(Text(background_note(result["background_cores"], _cpus(result))))
    blocks += [Item(f"note: {note}") for note in result["notes"]]
    return blocks


def _cpus(result: dict[str, Any]) -> Any:
    return result["machine"].get("usable_cpus")


# -- markdown


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _md_cell(cell: Cell) -> str:
    return f"`{cell.text}`" if isinstance(cell, Code) else cell


def _markdown(blocks: Sequence[Block], lines: list[str]) -> list[str]:
    for block in blocks:
        if isinstance(block, Heading):
            lines += [*([""] if lines else []), f"## {block.text}", ""]
        elif isinstance(block, Table):
            header = block.header or ["", ""]
            lines += _table(header, [[_md_cell(cell) for cell in row] for row in block.rows])
        elif isinstance(block, Text):
            lines += [block.text] if block.tight else ["", block.text]
        else:
            lines.append(f"- {block.text}")
    return lines


def format_report(result: dict[str, Any]) -> str:
    """Render ``result`` as markdown: the targets, then one table per section.

    Parameters
    ----------
    result
        The dictionary built by :func:`main`.

    Returns
    -------
    str
        Markdown to paste into a note.
    """
    machine = result["machine"]
    title = (
        f"# daskdeploy benchmarks ({machine['usable_cpus']} usable CPUs, Python "
        f"{machine['python']}, distributed {machine['distributed']}, daskdeploy "
        f"{machine['daskdeploy']}{', smoke run' if result['settings']['smoke'] else ''})"
    )
    lines = _markdown(report_blocks(result), [title])
    lines.append(f"Wall time {result['wall_seconds']:.1f} s; JSON: {result['json_path']}")
    return "\n".join(lines)


# -- reStructuredText

RST_HEADER = (
    ".. Generated by benchmarks/run_all.py --publish from the benchmarks.json next to this\n"
    "   file (format_rst); do not edit by hand, tests/test_benchmarks.py checks it.\n"
)
_RST_ESCAPE = re.compile(r"[\\`*_|'\"]|--+|\.\.\.+")
"""Markup characters, and what smart quotes would turn into typographic dashes/quotes."""


def _rst_text(text: str) -> str:
    """``text`` as RST that renders literally: markup characters, quotes, ``--`` and a
    leading punctuation character (which could start a list) are backslash-escaped."""
    text = _RST_ESCAPE.sub(lambda m: "".join("\\" + c for c in m.group()), text)
    if text and not text[0].isalnum() and text[0] != "\\":
        text = "\\" + text
    return text


def _rst_cell(cell: Cell) -> str:
    return f"``{cell.text}``" if isinstance(cell, Code) else _rst_text(cell)


def _rst_table(table: Table) -> list[str]:
    lines = [".. list-table::", "   :widths: auto"]
    lines += ["   :header-rows: 1"] if table.header else ["   :stub-columns: 1"]
    lines.append("")
    rows = ([list(table.header)] if table.header else []) + [list(row) for row in table.rows]
    for row in rows:
        for i, cell in enumerate(row):
            text = _rst_cell(cell)
            lines.append(f"   {'* -' if i == 0 else '  -'}{' ' + text if text else ''}")
    return lines


def _rst(blocks: Sequence[Block], underline: str) -> list[str]:
    lines: list[str] = []
    previous: Block | None = None
    for block in blocks:
        if not (isinstance(block, Item) and isinstance(previous, Item)):
            lines.append("")
        if isinstance(block, Heading):
            text = _rst_text(block.text)
            lines += [text, underline * len(text)]
        elif isinstance(block, Table):
            lines += _rst_table(block)
        elif isinstance(block, Text):
            lines.append(_rst_text(block.text))
        else:
            lines.append(f"* {_rst_text(block.text)}")
        previous = block
    return lines


def _date(result: dict[str, Any]) -> str:
    if not result.get("date"):
        return "not recorded"
    when = datetime.datetime.fromisoformat(result["date"]).astimezone(datetime.timezone.utc)
    source = result.get("date_source", "the end of the run")
    return f"{when:%Y-%m-%d %H:%M} UTC ({source})"


def _run_rows(result: dict[str, Any]) -> list[list[Cell]]:
    """Machine and settings of the run, one ``[name, value]`` row each."""
    machine, settings = result["machine"], result["settings"]
    versions = ["daskdeploy", "dask", "distributed", *OPTIONAL_VERSIONS]
    memory = machine.get("memory_bytes")
    load = result.get("background_cores")
    whole = result.get("background_cores_whole_run")
    loads = [
        f"{x:.2f}" if x is not None else "-"
        for x in ((result.get(k) or [None])[0] for k in ("loadavg_before", "loadavg_after"))
    ]
    kind = "smoke run: tiny sizes, not a measurement" if settings.get("smoke") else "full run"
    return [
        ["date", _date(result)],
        ["wall time", f"{result['wall_seconds']:.1f} s ({result['wall_seconds'] / 60:.1f} min)"],
        ["run", f"{kind}; {settings.get('repeats')} repeats (timed runs per measurement)"],
        ["sections", ", ".join(settings.get("sections", []))],
        ["backends", ", ".join(settings.get("backends", []))],
        [
            "CPU cores",
            f"{machine.get('usable_cpus')} usable (affinity mask) of {machine.get('cpu_count')}",
        ],
        ["CPU model", machine.get("cpu_model") or "not recorded by this run"],
        ["memory", "-" if memory is None else f"{memory / 2**30:.1f} GiB"],
        ["platform", f"{machine.get('platform')} ({machine.get('machine')})"],
        ["Python", f"{machine.get('python')} ({machine.get('implementation')})"],
        [
            "packages",
            ", ".join(f"{name} {machine[name]}" for name in versions if machine.get(name)),
        ],
        [
            "background load",
            f"{_fmt(load, '.2f')} of {_cpus(result)} cores (median over the timed intervals); "
            f"{_fmt(whole, '.2f')} over the whole run, pauses included; load average "
            f"{loads[0]} before, {loads[1]} after",
        ],
    ]


def format_rst(result: dict[str, Any], underline: str = "~") -> str:
    """Render ``result`` as a reStructuredText fragment for the docs' benchmarks page.

    The same blocks as :func:`format_report`, preceded by a table of the machine and the
    run (date, wall time, cores, CPU, versions); tables are ``list-table`` directives.

    Parameters
    ----------
    result
        The dictionary built by :func:`main` (or its sanitized copy, see :func:`publish`).
    underline
        Heading underline character: one level below the section that includes it.

    Returns
    -------
    str
        The fragment, ending with a newline.
    """
    blocks: list[Block] = [Heading("Machine and run"), Table(None, _run_rows(result))]
    lines = _rst([*blocks, *report_blocks(result)], underline)
    return RST_HEADER + "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- publish


def _scrubbers() -> list[tuple[re.Pattern[str], str]]:
    """(pattern, replacement) pairs that remove this machine's paths and user name."""
    roots = {
        str(HERE.parent): "<repo>",
        sys.prefix: "<python>",
        sys.base_prefix: "<python>",
        str(Path.home()): "~",
        tempfile.gettempdir(): "<tmp>",
    }
    # longest first: the repository or the interpreter may lie in the home directory
    pairs = sorted(((old, new) for old, new in roots.items() if old.strip("/")), key=_length)
    scrub = [(re.compile(re.escape(old) + r"(?![\w.-])"), new) for old, new in pairs]
    with contextlib.suppress(Exception):
        user = getpass.getuser()
        if len(user) >= 3 and user != "root":  # root is no person's name
            scrub.append((re.compile(rf"\b{re.escape(user)}\b"), "<user>"))
    return scrub


def _length(pair: tuple[str, str]) -> int:
    return -len(pair[0])


_ABSOLUTE_PATH = re.compile(r"(?<![\w.<>~])/(?:home|Users|root|work|tmp|scratch)/")


def sanitize(result: dict[str, Any], source: Path | None = None) -> dict[str, Any]:
    """A copy of ``result`` fit to publish: no absolute paths, user or host names.

    ``json_path`` and ``figures`` become bare file names (the files sit side by side
    when published). A run that did not record its ``date`` gets the modification time
    of ``source`` (the end of the run), and ``date_source`` says so.

    Raises
    ------
    ValueError
        When an absolute path remains after scrubbing (a new kind of path in the JSON).
    """
    scrub = _scrubbers()

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: clean(value) for key, value in node.items()}
        if isinstance(node, list):
            return [clean(item) for item in node]
        if isinstance(node, str):
            for pattern, new in scrub:
                node = pattern.sub(new, node)
        return node

    published = clean(result)
    published["json_path"] = "benchmarks.json"
    published["figures"] = {
        name: Path(path).name for name, path in (result.get("figures") or {}).items()
    }
    if not published.get("date") and source is not None:
        mtime = source.stat().st_mtime
        when = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc)
        published["date"] = when.isoformat(timespec="seconds")
        published["date_source"] = (
            "modification time of its benchmarks.json, written at the end of the run"
        )
    left = sorted(set(_ABSOLUTE_PATH.findall(json.dumps(published))))
    if left:
        raise ValueError(f"absolute paths left in the published JSON: {left}")
    return published


def publish(source: Path, dest: Path) -> list[Path]:
    """Publish the run in ``source`` (a benchmarks.json) into the docs directory ``dest``.

    Writes ``dest/benchmarks.json`` (see :func:`sanitize`), copies the run's PNG figures
    and writes ``dest/results.inc``, the RST fragment (:func:`format_rst`) that the
    docs' benchmarks page includes. Nothing is re-run.

    Returns
    -------
    list of Path
        The files written.
    """
    source = Path(source).resolve()
    result = json.loads(source.read_text())
    published = sanitize(result, source)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, path in (result.get("figures") or {}).items():
        figure = Path(path)
        if not figure.is_absolute() or not figure.exists():  # published or moved: beside it
            figure = source.parent / figure.name
        target = dest / published["figures"][name]
        if not (target.exists() and target.samefile(figure)):
            shutil.copyfile(figure, target)
        written.append(target)
    if result.get("settings", {}).get("smoke"):
        print("publish: this is a smoke run, not a measurement", file=sys.stderr)
    json_out, rst_out = dest / "benchmarks.json", dest / "results.inc"
    json_out.write_text(json.dumps(published, indent=2) + "\n")
    rst_out.write_text(format_rst(published))
    written += [json_out, rst_out]
    print("published: " + ", ".join(str(path) for path in written), file=sys.stderr)
    return written


# ----------------------------------------------------------------------------- main


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so every cluster, pool and environment is closed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _background_samples(node: Any, inside: bool = False) -> Iterator[float]:
    """Every number stored under a ``background_cores`` key, however deeply nested."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _background_samples(value, inside or key == "background_cores")
    elif isinstance(node, list):
        for item in node:
            yield from _background_samples(item, inside)
    elif inside and isinstance(node, int | float) and not isinstance(node, bool):
        yield float(node)


def _cpu_model() -> dict[str, str]:
    """``{"cpu_model": name}`` from /proc/cpuinfo (or :func:`platform.processor`)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return {"cpu_model": line.split(":", 1)[1].strip()}
    name = platform.processor()
    return {"cpu_model": name} if name else {}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the selected sections, write JSON and figures, print markdown, return the JSON.

    With ``--from-json PATH`` nothing runs: the saved run is reported (and published
    with ``--publish DIR``) and returned. ``--publish DIR`` after a run publishes it.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    dict
        ``machine``, ``settings``, one entry per section that ran, ``targets``,
        ``figures``, ``notes``, ``background_cores``, ``loadavg_before``/``loadavg_after``,
        ``wall_seconds``, ``date`` and ``json_path``: the content of
        ``<out>/benchmarks.json``.
    """
    args = _parse_args(argv)
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text())
        print(format_report(result), flush=True)
        if args.publish is not None:
            publish(args.from_json, args.publish)
        return result
    args.out.mkdir(parents=True, exist_ok=True)
    meter = LoadMeter()
    notes: list[str] = []
    loadavg_before = loadavg()
    t0 = time.perf_counter()
    with _sigterm_as_exit(), meter.interval() as whole:
        sections = {
            **_run_env_sections(args, meter, notes),
            **_run_local_sections(args, meter, notes),
        }
    json_path = args.out / "benchmarks.json"
    result: dict[str, Any] = {
        "machine": machine_info(**_cpu_model()),
        "settings": {
            "smoke": args.smoke,
            "repeats": args.repeats,
            "backends": args.backends,
            "sections": args.sections,
            "max_workers": args.max_workers,
            "timer": "time.perf_counter",
            "background_measured": meter.available,
        },
        **sections,
        "notes": notes,
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
        "background_cores_whole_run": whole["background_cores"],
        "wall_seconds": time.perf_counter() - t0,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "json_path": str(json_path),
    }
    sections_only = {name: result.get(name) for name in SECTIONS}
    result["background_cores"] = median(list(_background_samples(sections_only)))
    result["targets"] = collect_targets(result)
    import plots

    result["figures"] = plots.plot_all(result, args.out, notes)
    text = json.dumps(result, indent=2, default=str)  # a stray Path must not lose the run
    json_path.write_text(text + "\n")
    result = json.loads(text)
    print(format_report(result), flush=True)
    if args.publish is not None:
        publish(json_path, args.publish)
    return result


if __name__ == "__main__":
    main()
