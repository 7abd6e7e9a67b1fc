"""Option declarations, value conversion and validation.

A backend declares the options it accepts as :class:`Option` objects. Values arrive from
keyword arguments, profiles, dask config YAML, ``DASK_DASKDEPLOY__...`` environment
variables and the command line; each passes through the option's converter, which either
returns a normalised value or raises ``ValueError`` with a sentence saying what is
expected. :func:`resolve_options` turns those layers into one validated mapping and
remembers where each value came from, so error messages and ``--dry-run`` can say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import OptionError, closest_match_hint

__all__ = [
    "COMMON_OPTIONS",
    "DEATH_TIMEOUT",
    "INTERFACE",
    "NANNY",
    "WORKER_EXTRA_ARGS",
    "WORKER_PYTHON",
    "Option",
    "ResolvedOptions",
    "adapt_range",
    "boolean",
    "duration_or_keyword",
    "duration_seconds",
    "memory_size",
    "resolve_options",
    "text",
    "text_list",
    "whole_number",
    "worker_lifetime_setting",
]

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    """One option a backend accepts.

    Parameters
    ----------
    name
        Keyword-argument name, also the key under ``daskdeploy.<backend>`` in dask config.
    convert
        Callable turning a raw value into the normalised one; raises ``ValueError`` with a
        sentence describing what is expected.
    help
        One line for ``--help``, the docs and ``daskdeploy backends --options``.
    nullable
        Whether ``None`` is accepted; it means "choose automatically" and the help text
        says what the automatic choice is.
    aliases
        Other names accepted for this option (e.g. dask-jobqueue's ``queue`` for
        ``partition``).
    """

    name: str
    convert: Converter
    help: str
    nullable: bool = False
    aliases: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """Return the converted value or raise ``ValueError``."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError("it cannot be empty (null)")
        return self.convert(value)


def whole_number(minimum: int = 1) -> Converter:
    """Converter for integers of at least ``minimum`` (``True``/``False`` are rejected)."""

    def convert(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number >= {minimum}, got {value!r}")
        if value < minimum:
            raise ValueError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return convert


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def boolean(value: Any) -> bool:
    """Converter for booleans; accepts ``true/false/yes/no/on/off/1/0`` strings too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def text(value: Any) -> str:
    """Converter for strings; numbers are accepted and turned into their text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    result = str(value)
    if not result.strip():
        raise ValueError("expected a non-empty string")
    return result


def text_list(value: Any) -> list[str]:
    """Converter for a list of strings; a single string becomes a one-item list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [text(item) for item in value]
    raise ValueError(f"expected a list of strings, got {type(value).__name__} {value!r}")


def memory_size(value: Any) -> int:
    """Converter for memory sizes: bytes as an integer, or text such as ``"4GB"``/``"512MiB"``."""
    from dask.utils import parse_bytes

    if isinstance(value, bool):
        raise ValueError(f"expected a memory size such as '4GB', got {value!r}")
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"expected a memory size such as '4GB', '512MiB' or a number of bytes, got {value!r}"
        ) from None
    if size <= 0:
        raise ValueError(f"expected a positive memory size, got {value!r}")
    return int(size)


def duration_seconds(value: Any) -> float:
    """Converter for durations: seconds as a number, or text such as ``"90s"``/``"5 minutes"``."""
    from dask.utils import parse_timedelta

    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 60 or '5 minutes', got {value!r}")
    try:
        seconds = parse_timedelta(value, default="seconds")
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"expected a positive duration such as 60, '90s' or '5 minutes', got {value!r}"
        ) from None
    if seconds is None or seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return float(seconds)


def duration_or_keyword(*keywords: str) -> Converter:
    """Converter for a duration (seconds, as :func:`duration_seconds`) or one of ``keywords``.

    >>> duration_or_keyword("auto", "off")("AUTO"), duration_or_keyword("auto")("90s")
    ('auto', 90.0)
    """

    def convert(value: Any) -> float | str:
        if isinstance(value, str) and value.strip().lower() in keywords:
            return value.strip().lower()
        try:
            return duration_seconds(value)
        except ValueError:
            choices = "".join(f"'{word}', " for word in keywords)
            raise ValueError(
                f"expected {choices}a number of seconds or a duration such as '50 minutes', "
                f"got {value!r}"
            ) from None

    return convert


_lifetime_keyword = duration_or_keyword("auto", "off")


def worker_lifetime_setting(value: Any) -> float | str:
    """Converter for worker lifetimes: ``"auto"``, ``"off"`` or a duration in seconds.

    YAML reads an unquoted ``off`` as ``False``, which means ``"off"`` too.

    >>> worker_lifetime_setting(False), worker_lifetime_setting("50 minutes")
    ('off', 3000.0)
    """
    return "off" if value is False else _lifetime_keyword(value)


def adapt_range(value: Any) -> tuple[int, int]:
    """Converter for an adaptive range: ``[min, max]``, ``"min,max"``, ``"min:max"`` or a
    mapping with ``minimum``/``maximum``.

    >>> adapt_range([0, 4]), adapt_range("1:8"), adapt_range({"maximum": 3})
    ((0, 4), (1, 8), (0, 3))
    """
    expected = "expected [minimum, maximum] workers such as [0, 8] or '0:8'"
    if isinstance(value, Mapping):
        unknown = set(value) - {"minimum", "maximum"}
        if unknown or "maximum" not in value:
            raise ValueError(f"{expected}, or {{minimum: 0, maximum: 8}}; got {value!r}")
        pair: Any = [value.get("minimum", 0), value["maximum"]]
    elif isinstance(value, str):
        pair = [part.strip() for part in value.replace(":", ",").split(",")]
    else:
        pair = value
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise ValueError(f"{expected}, got {value!r}")
    try:
        minimum = whole_number(0)(pair[0])
        maximum = whole_number(0)(pair[1])
    except ValueError:
        raise ValueError(f"{expected}, got {value!r}") from None
    if maximum < 1:
        raise ValueError(f"the maximum must be at least 1 worker, got {maximum}")
    if minimum > maximum:
        raise ValueError(f"the minimum ({minimum}) is above the maximum ({maximum})")
    return (minimum, maximum)


COMMON_OPTIONS: tuple[Option, ...] = (
    Option(
        "workers",
        whole_number(1),
        "Number of worker processes (null: the backend decides; each backend's options say how).",
        nullable=True,
    ),
    Option(
        "threads_per_worker",
        whole_number(1),
        "Threads in each worker. Keep 1 for pure-Python code: the GIL lets only one "
        "thread run Python at a time.",
    ),
    Option(
        "memory_per_worker",
        memory_size,
        "Memory limit of each worker, e.g. '4GB' (null: dask's 'auto', the machine's "
        "memory times threads_per_worker over its cores).",
        nullable=True,
    ),
    Option(
        "timeout",
        duration_seconds,
        "How long to wait for the workers to connect before giving up, e.g. 60 or '5 minutes'.",
    ),
    Option(
        "dashboard",
        boolean,
        "Serve the Dask dashboard (on 127.0.0.1 only) and print its link.",
    ),
    Option(
        "quiet",
        boolean,
        "Do not print the one-line summary (backend, workers, dashboard link) to stderr.",
    ),
    Option(
        "report",
        boolean,
        "Measure the run and print a CPU-efficiency report (like seff: CPU efficiency, "
        "tasks, memory, hints) to stderr when the deployment closes.",
    ),
    Option(
        "tls",
        boolean,
        "Encrypt and authenticate every connection with TLS credentials made for this "
        "deployment, so no other user can connect (default: on, except local, which "
        "listens on 127.0.0.1 only). false: plain TCP, with a warning saying who can "
        "then connect (none for local on loopback).",
    ),
    Option(
        "adopt",
        boolean,
        "Under `daskdeploy run`: the clusters, clients and schedulers the script makes for "
        "itself (Client(), LocalCluster(...), SLURMCluster(...), scheduler='processes', "
        "...) run on this deployment, one stderr line each saying so. false: the script "
        "keeps its own (daskdeploy run --no-adopt). No effect on deploy() elsewhere.",
    ),
)


@dataclass(frozen=True)
class ResolvedOptions(Mapping[str, Any]):
    """Validated option values of one deployment, with the origin of each value.

    Behaves as a read-only mapping from option name to value.

    Attributes
    ----------
    settings
        Option name to validated value.
    sources
        Option name to where the value came from, such as ``"keyword argument"`` or
        ``"dask config daskdeploy.local.workers"``.
    """

    settings: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    def __iter__(self):
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def describe(self) -> str:
        """Return one ``name = value  (source)`` line per option."""
        width = max((len(name) for name in self.settings), default=0)
        return "\n".join(
            f"  {name:<{width}} = {value!r}  ({self.sources.get(name, 'default')})"
            for name, value in self.settings.items()
        )


def resolve_options(
    backend: str,
    declared: Iterable[Option],
    layers: Sequence[tuple[str, Mapping[str, Any]]],
) -> ResolvedOptions:
    """Merge option layers (lowest priority first) and validate every value.

    Parameters
    ----------
    backend
        Backend name, for messages.
    declared
        The options the backend accepts.
    layers
        ``(source description, values)`` pairs, lowest priority first. A source
        description may contain ``{name}``, replaced by the option name.

    Raises
    ------
    OptionError
        For an unknown option (naming the valid ones and the closest match) or a value
        the option's converter rejects (naming where the value came from).
    """
    options = {option.name: option for option in declared}
    aliases = {alias: option.name for option in declared for alias in option.aliases}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for raw_name, value in layer.items():
            given = str(raw_name).replace("-", "_")
            name = aliases.get(given, given)
            where = source.format(name=given)
            if name not in options:
                raise OptionError(
                    f"Unknown option {name!r} for backend {backend!r} (from {where})."
                    f"{closest_match_hint(name, options)} "
                    f"Valid options: {', '.join(sorted(options))}."
                )
            values[name] = value
            sources[name] = where
    checked: dict[str, Any] = {}
    for name, option in options.items():
        value = values.get(name)
        try:
            checked[name] = option.check(value)
        except ValueError as exc:
            where = sources.get(name, "built-in default")
            raise OptionError(
                f"Invalid value for option {name!r} of backend {backend!r} (from {where}): "
                f"{exc}. {option.help}"
            ) from None
    return ResolvedOptions(checked, {name: sources.get(name, "default") for name in checked})


#: The ``death_timeout`` option of every backend whose workers can lose their scheduler.
DEATH_TIMEOUT = Option(
    "death_timeout",
    duration_seconds,
    "Seconds a worker waits for a lost scheduler before exiting.",
)

#: Options of the backends that start ``dask worker`` processes themselves.
WORKER_EXTRA_ARGS = Option("worker_extra_args", text_list, "More arguments for `dask worker`.")
INTERFACE = Option(
    "interface",
    text,
    "Network interface for the scheduler and workers, e.g. 'ib0' (null: automatic).",
    nullable=True,
)
WORKER_PYTHON = Option(
    "python", text, "Python that runs the workers (null: this Python).", nullable=True
)
NANNY = Option("nanny", boolean, "Run a nanny that restarts a worker that dies.")
