"""Run every daskdeploy benchmark in one go: JSON, PNG figures and a markdown report.

    python benchmarks/run_all.py [--smoke] [--repeats 5] [--backends local,slurm,...]
                                 [--sections startup,workloads,scaling,imports]
                                 [--max-workers N] [--out benchmarks/results]

Sections (all by default, in this order):

* ``startup``: deploy until every worker is connected, then close until nothing is left,
  daskdeploy against the raw library (its "peer") on every available backend
  (``startup.py``);
* ``workloads``: the four examples on every available backend (``workloads.py``);
* ``scaling``: strong scaling of a GIL-bound and a NumPy workload on this machine,
  daskdeploy ``local`` against Dask's threaded and multiprocessing schedulers and a plain
  ``multiprocessing.Pool`` (``scaling.py``);
* ``imports``: ``import daskdeploy`` against ``import distributed`` (``imports.py``).

Backends that cannot run here are reported as skipped, with the reason. This is a
benchmark, not a test: it exits 0 whether or not the targets are met. :func:`main` returns
the dictionary it writes to ``<out>/benchmarks.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import signal
import sys
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
    LoadMeter,
    background_note,
    loadavg,
    machine_info,
    median,
)

__all__ = ["main"]

BACKENDS = ("local", "slurm", "allocation", "ssh", "mpi")
ENV_SECTIONS = ("startup", "workloads")
"""Sections that run on the backends' environments (``environments.backends``)."""
SECTIONS = (*ENV_SECTIONS, "scaling", "imports")
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
    """Run the sections that need no backend environment: scaling and imports."""
    return {
        name: _guarded(name, notes, functools.partial(_run_section, name, args, meter, notes))
        for name in SECTIONS
        if name in args.sections and name not in ENV_SECTIONS
    }


# -------------------------------------------------------------------------- targets


def _startup_targets(section: dict[str, Any]) -> list[dict[str, Any]]:
    """One target per backend from the startup section's ``ratio.total``."""
    target = section.get("target", STARTUP_TARGET)
    rows = []
    for name, entry in section.get("backends", {}).items():
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
                "target": f"<= {target}",
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


def _fmt(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{format(value, spec)}{suffix}"


def _mark(met: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: "n/a"}[met]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _targets_md(result: dict[str, Any]) -> list[str]:
    rows = [
        [t["name"], t["target"], _fmt(t["value"]), _mark(t["met"]) + _note(t)]
        for t in result["targets"]
    ]
    return ["## Targets", "", *_table(["measure", "target", "value", "result"], rows)]


def _note(target: dict[str, Any]) -> str:
    return f" ({target['note']})" if target.get("note") else ""


def _startup_md(section: dict[str, Any]) -> list[str]:
    rows = []
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
                _mark(entry.get("pass")),
            ]
        )
    target = section.get("target", STARTUP_TARGET)
    header = ["backend", "raw peer", "workers", "start dd s", "start raw s"]
    header += ["close dd s", "close raw s", "total ratio", f"<= {target}"]
    return ["## Start-up + close (median seconds)", "", *_table(header, rows)]


def _workloads_md(section: dict[str, Any]) -> list[str]:
    backends = {name: entry for name, entry in section.get("backends", {}).items() if entry}
    examples = sorted({example for entry in backends.values() for example in entry})
    rows = []
    for example in examples:
        cells = []
        for entry in backends.values():
            run = entry.get(example)
            if not run:
                cells.append("-")
            else:
                cells.append(
                    _fmt(run.get("median"), ".2f", " s") + ("" if run.get("ok") else " FAILED")
                )
        rows.append([example, *cells])
    return ["## Examples (median seconds)", "", *_table(["example", *backends], rows)]


def _scaling_md(section: dict[str, Any]) -> list[str]:
    lines = []
    ks = section.get("workers", [])
    for workload, data in section.get("workloads", {}).items():
        methods = data["methods"]
        rows = []
        for i, k in enumerate(ks):
            cells = [
                f"{_fmt(entry['median'][i])} ({_fmt(entry['speedup'][i], '.2f')}x, "
                f"{_fmt(entry['speedup_vs_pool1'][i], '.2f')}x)"
                for entry in methods.values()
            ]
            rows.append([str(k), f"{data['ideal'][i]}x", *cells])
        lines += [
            f"## Scaling: {workload} (median s (speed-up over own k=1, over Pool(1)))",
            "",
            *_table(["k", "ideal", *methods], rows),
            "",
        ]
    sizes = section.get("sizes")
    if sizes:
        lines.append(
            f"gil: {sizes['tasks']} tasks of busy_sum({sizes['n']:,}); pi: {sizes['chunks']} "
            f"chunks of {sizes['chunk']:,} points; {section.get('cores')} usable cores"
        )
    return lines


def _imports_md(section: dict[str, Any]) -> list[str]:
    rows = [
        [
            f'`python -c "{statement}"`',
            _fmt(section["median"].get(name)),
            _fmt(section["net_median"].get(name)) if name in section["net_median"] else "",
        ]
        for name, statement in section.get("statements", {}).items()
    ]
    return [
        f"## Import time (median of {section.get('runs')} fresh interpreters)",
        "",
        *_table(["command", "wall s", "minus bare interpreter s"], rows),
        "",
        f"ratio {_fmt(section.get('ratio'))} (net {_fmt(section.get('net_ratio'))})",
    ]


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "startup": _startup_md,
    "workloads": _workloads_md,
    "scaling": _scaling_md,
    "imports": _imports_md,
}


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
    lines = [
        f"# daskdeploy benchmarks ({machine['usable_cpus']} usable CPUs, Python "
        f"{machine['python']}, distributed {machine['distributed']}, daskdeploy "
        f"{machine['daskdeploy']}{', smoke run' if result['settings']['smoke'] else ''})",
        "",
        *_targets_md(result),
    ]
    for name, render in RENDERERS.items():
        section = result.get(name)
        if not isinstance(section, dict):
            continue
        lines.append("")
        if "error" in section:
            lines += [f"## {name}", "", f"failed: {section['error']}"]
            continue
        lines += render(section)
        skipped = section.get("skipped") or {}
        lines += [f"- {backend} skipped: {reason}" for backend, reason in skipped.items()]
    lines += [
        "",
        background_note(result["background_cores"], machine["usable_cpus"]),
        *(f"- note: {note}" for note in result["notes"]),
        f"Wall time {result['wall_seconds']:.1f} s; JSON: {result['json_path']}",
    ]
    return "\n".join(lines)


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


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the selected sections, write JSON and figures, print markdown, return the JSON.

    Parameters
    ----------
    argv
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    dict
        ``machine``, ``settings``, one entry per section that ran, ``targets``,
        ``figures``, ``notes``, ``background_cores``, ``loadavg_before``/``loadavg_after``,
        ``wall_seconds`` and ``json_path``: the content of ``<out>/benchmarks.json``.
    """
    args = _parse_args(argv)
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
        "machine": machine_info(),
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
    return result


if __name__ == "__main__":
    main()
