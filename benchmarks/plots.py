"""PNG figures of the benchmark results (matplotlib, Agg backend: no display needed).

:func:`plot_all` draws one figure per section that ran and has something to show:

* ``startup.png``: per backend, stacked start + close seconds of daskdeploy and of its raw
  peer side by side, labelled with the ratio of the totals;
* ``scaling.png``: two panels (GIL-bound, pi), speed-up over a 1-process
  ``multiprocessing.Pool`` against the number of workers for each method, with the ideal
  ``min(k, cores)`` dashed;
* ``workloads.png``: median seconds of each example on each backend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["plot_all", "plot_scaling", "plot_startup", "plot_workloads"]

COLOURS = {"daskdeploy": "tab:blue", "raw": "tab:grey"}
WORKLOAD_TITLES = {"gil": "GIL-bound pure Python (busy_sum)", "pi": "Monte Carlo pi (NumPy)"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_startup(section: dict[str, Any], path: Path) -> Path | None:
    """Stacked start/close bars per backend, daskdeploy next to raw; ``None`` if no data.

    Parameters
    ----------
    section
        The ``startup`` section: ``backends.<name>.medians.{daskdeploy,raw}.{start,close}``,
        ``ratio.total`` and ``raw_peer``.
    path
        Where to write the PNG.
    """
    backends = {
        name: entry
        for name, entry in section.get("backends", {}).items()
        if entry.get("medians", {}).get("daskdeploy", {}).get("start") is not None
    }
    if not backends:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 2.4 * len(backends)), 4.5))
    width = 0.38
    for i, entry in enumerate(backends.values()):
        for j, side in enumerate(("daskdeploy", "raw")):
            m = entry["medians"][side]
            x = i + (j - 0.5) * width
            start, close = m.get("start") or 0.0, m.get("close") or 0.0
            label = side if i == 0 else None
            ax.bar(x, start, width, color=COLOURS[side], label=label and f"{label} start")
            ax.bar(
                x,
                close,
                width,
                bottom=start,
                color=COLOURS[side],
                alpha=0.45,
                hatch="//",
                label=label and f"{label} close",
            )
        total = entry.get("ratio", {}).get("total")
        top = max((entry["medians"][s].get("total") or 0.0) for s in ("daskdeploy", "raw"))
        if total is not None:
            ax.text(i, top * 1.03, f"x{total:.2f}", ha="center", va="bottom", fontsize=9)
    peers = [
        textwrap.fill(f"vs {entry.get('raw_peer', 'raw')}", 24, break_long_words=False)
        for entry in backends.values()
    ]
    ax.set_xticks(range(len(backends)), [f"{n}\n{p}" for n, p in zip(backends, peers, strict=True)])
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("seconds (median)")
    target = section.get("target", 1.05)
    ax.set_title(f"Start-up + close, daskdeploy vs raw (x: total ratio, target <= {target})")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_scaling(section: dict[str, Any], path: Path) -> Path | None:
    """Speed-up over Pool(1) against workers, one panel per workload; ``None`` if no data.

    Parameters
    ----------
    section
        The ``scaling`` section: ``workers``, ``workloads.<w>.methods.<m>.speedup_vs_pool1``
        and ``workloads.<w>.ideal``.
    path
        Where to write the PNG.
    """
    workloads = section.get("workloads", {})
    if not workloads:
        return None
    ks = section["workers"]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.2 * len(workloads), 4), squeeze=False)
    for ax, (workload, data) in zip(axes[0], workloads.items(), strict=True):
        ax.plot(ks, data["ideal"], "k--", label="ideal min(k, cores)")
        for method, entry in data["methods"].items():
            points = [(k, s) for k, s in zip(ks, entry["speedup_vs_pool1"], strict=True) if s]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=method)
        ax.set_title(WORKLOAD_TITLES.get(workload, workload), fontsize=10)
        ax.set_xlabel("workers k")
        ax.set_ylabel(f"speed-up over {section.get('baseline', 'pool')} with 1 process")
        ax.set_xticks(ks)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_workloads(section: dict[str, Any], path: Path) -> Path | None:
    """Median seconds per example, one bar per backend; ``None`` if no data.

    Parameters
    ----------
    section
        The ``workloads`` section: ``backends.<backend>.<example>.{median,ok}``.
    path
        Where to write the PNG.
    """
    backends = {name: entry for name, entry in section.get("backends", {}).items() if entry}
    examples = sorted({example for entry in backends.values() for example in entry})
    if not examples:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(14.0, 2.0 + 0.45 * len(examples) * len(backends)), 4))
    width = 0.8 / len(backends)
    for j, (backend, entry) in enumerate(backends.items()):
        label: str | None = backend
        for i, example in enumerate(examples):
            run = entry.get(example)
            if not run or run.get("median") is None:
                continue
            x = i + (j - (len(backends) - 1) / 2) * width
            ax.bar(x, run["median"], width, color=f"C{j}", label=label)
            label = None  # one legend entry per backend
            if not run.get("ok", True):
                ax.text(x, run["median"], "failed", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(examples)), examples)
    ax.set_xlim(-0.5, len(examples) - 0.5)
    ax.set_ylabel("seconds (median)")
    ax.set_title("Examples on each backend", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


PLOTTERS: dict[str, Callable[[dict[str, Any], Path], Path | None]] = {
    "startup": plot_startup,
    "scaling": plot_scaling,
    "workloads": plot_workloads,
}


def plot_all(result: dict[str, Any], out: Path, notes: list[str]) -> dict[str, str]:
    """Draw the figure of every section in ``result`` that has data.

    Parameters
    ----------
    result
        run_all's result dictionary (sections at the top level).
    out
        Directory for the PNG files (``<section>.png``).
    notes
        Receives a line when matplotlib is missing or a figure fails.

    Returns
    -------
    dict
        Section name to the path of its PNG, for the figures that were written.
    """
    try:
        _pyplot()
    except ImportError:
        notes.append("plots: matplotlib is not installed, no figures (pip install matplotlib)")
        return {}
    figures: dict[str, str] = {}
    for name, plotter in PLOTTERS.items():
        section = result.get(name)
        if not isinstance(section, dict):
            continue
        try:
            path = plotter(section, out / f"{name}.png")
        except Exception as exc:  # a figure must not lose the measurements
            notes.append(f"plots: {name}.png failed: {exc!r}")
            continue
        if path is not None:
            figures[name] = str(path)
    return figures
