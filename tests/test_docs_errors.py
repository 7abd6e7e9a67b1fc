"""Every error message daskdeploy raises is documented in docs/errors.rst (static, no cluster).

The test reads the sources with :mod:`ast`, finds every place that constructs one of
daskdeploy's exceptions (:class:`~daskdeploy.DaskDeployError` and its subclasses, found in
the sources) or click's ``UsageError``/``BadParameter``/``ClickException`` (and their
subclasses, such as the command line's ``UserError``), and takes the literal text of the
message: string constants and the constant parts of f-strings, split at the placeholders.
The longest literal piece of each message must appear in docs/errors.rst.

Besides the exceptions themselves it checks texts that users read *inside* such messages:

* the sentences the option converters raise as ``ValueError`` (they end up in "Invalid
  value for option ..."), and the other ``ValueError``/``RuntimeError`` texts listed in
  :data:`RAISED_INSIDE`;
* the reasons a backend's ``available()`` gives with ``Availability.missing(...)`` (shown
  in "Backend 'x' cannot run here: <reason>" and by ``daskdeploy backends``);
* strings returned by the helpers that build messages (followed automatically when the
  message is a call of a daskdeploy function) and those listed in :data:`RETURNED_INSIDE`.

Where the message (or a ``{placeholder}`` in it) is not a literal, the test follows it: a
variable to its assignments in the same function, ``"; ".join(items)`` to the items (each
checked on its own), a call of a daskdeploy function to its ``return`` statements, and
``a if c else b`` to both texts. Messages with no literal text left (re-raising
``str(exc)`` of an error documented where it is raised) must be listed in
:data:`ALLOWED_DYNAMIC`, with the reason.

When this test fails, it lists every undocumented message as ``file:line``, with ``…`` for
the parts filled in at run time: add an entry for it to docs/errors.rst, with realistic
example values in place of the ``…`` and a paragraph saying what to do.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "daskdeploy"
ERRORS_PAGE = REPO / "docs" / "errors.rst"
SKIPPED_DIRECTORIES = ("testing", "__pycache__")

#: A message's longest literal piece must have at least this many characters to be checked;
#: shorter ones (", ", " s.") say nothing about which message it is.
MIN_CHUNK = 10

#: Exception classes whose messages users read; subclasses defined in the package (e.g.
#: ``OptionError``, ``CommandError``, the command line's ``UserError``) are found by the test.
BASE_EXCEPTIONS = {"DaskDeployError", "ClickException", "UsageError", "BadParameter"}

#: Classes that must be found, so a renamed base class cannot make the test check nothing.
EXPECTED_EXCEPTIONS = {
    "DaskDeployError",
    "UnknownBackendError",
    "OptionError",
    "ConfigError",
    "BackendUnavailableError",
    "DeploymentError",
    "ClickException",
    "UsageError",
    "BadParameter",
}

#: ``ValueError``/``RuntimeError`` texts users read inside another message:
#: ``{"file.py": {"function": "where the text shows up"}}``; ``"*"`` is every function.
RAISED_INSIDE: dict[str, dict[str, str]] = {
    "options.py": {"*": "option converters: 'Invalid value for option ...: <sentence>'"},
    "backends/ssh/backend.py": {"_mapping": "converter of the connect_options option"},
    "backends/jobqueue/backend.py": {"_walltime": "converter of the walltime option"},
    "backends/jobqueue/jobscript.py": {
        "parse_walltime": "walltime converter, and `daskdeploy sbatch --time` ('--time: ...')"
    },
    "backends/ssh/hosts.py": {
        "read_hostfile": "'Unusable host list in hostfile ... for the ssh backend: <text>'",
        "plan_hosts": "'Unusable host list ... for the ssh backend: <text>'",
        "_probe": "a host's line in 'SSH hosts not usable, nothing was started:' (or, "
        "from the remote writer, in 'Could not install the TLS ...')",
    },
    "backends/slurm/sbatch.py": {
        "SbatchRequest.__post_init__": "`daskdeploy sbatch` prints it after 'Error:'",
        "_check_text": "`daskdeploy sbatch` prints it after 'Error:'",
        "_check_memory": "`daskdeploy sbatch` prints it after 'Error:'",
    },
}

#: Strings returned by functions whose result users read inside another message, where the
#: test cannot see the link by itself (the result passes through an exception or a list).
RETURNED_INSIDE: dict[str, dict[str, str]] = {
    "backends/ssh/hosts.py": {
        "_cause": "a host's line in 'SSH hosts not usable' and similar messages"
    },
}

#: Messages with no literal text of their own: ``{"file.py:function": "why that is fine"}``.
ALLOWED_DYNAMIC: dict[str, str] = {
    "named/control.py:request": "re-raises the supervisor's answer, whose texts "
    "(named/supervisor.py:Supervisor.handle) are documented",
    "cli/errors.py:api_call": "re-raises str() of a DaskDeployError, documented where it is raised",
    "cli/run.py:_echo_check": "re-raises str() of a DeploymentError from Plan.check()",
    "backends/slurm/commands.py:sbatch": "re-raises str() of SbatchRequest's ValueError "
    "(RAISED_INSIDE)",
    "backends/slurm/commands.py:_test_only": "re-raises str() of sbatch --test-only's CommandError",
    "backends/slurm/commands.py:_submit_and_explain": "re-raises str() of sbatch's CommandError",
    "backends/slurm/commands.py:hostfile": "re-raises str() of scontrol show hostnames' "
    "CommandError",
    "datasets/cli.py:_friendly_errors": "re-raises the data set's ImportError, whose text "
    "(pip install 'daskdeploy[examples]') is documented",
    "backends/slurm/sbatch.py:SbatchRequest.__post_init__": "'--time: ' before parse_walltime's "
    "ValueError, whose texts are checked (RAISED_INSIDE)",
    "backends/jobqueue/backend.py:JobQueueBackend.available": "the system's "
    "tools_missing_reason(), documented under BackendUnavailableError",
    "backends/jobqueue/commands.py:jobscript": "re-raises str() of plan()'s OptionError "
    "(a bad --time or --option), documented where it is raised",
    "backends/jobqueue/commands.py:_check_worker_options": "re-raises str() of plan()'s "
    "OptionError for a --option value, documented where it is raised",
    "backends/oar/system.py:OarSystem.submit": "re-raises oarsub's CommandError with the "
    "inline script replaced by its file name",
}

#: How many steps (a variable, a call, a formatted value, a joined list) are followed.
MAX_DEPTH = 8

#: A message with more alternative texts than this (if/else parts multiply) is cut short.
MAX_ALTERNATIVES = 32

PART = "item of a joined list"
RETURNED = "returned text"

Piece = str | None  # None: filled in at run time
Text = tuple[Piece, ...]


@dataclass
class Module:
    relative: str  # "backends/slurm/backend.py"
    name: str  # "daskdeploy.backends.slurm.backend"
    tree: ast.Module
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # name: (module, name)
    constants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One message (or one alternative of it) found at ``where``."""

    where: str  # "backends/slurm.py:207"
    scope: str  # "backends/slurm.py:SlurmBackend.validate"
    kind: str  # "OptionError", "Availability.missing", "ValueError", ...
    text: Text

    def chunks(self) -> list[str]:
        joined = "".join("\0" if piece is None else piece for piece in self.text)
        return [normalise(chunk) for chunk in joined.split("\0")]

    def key_chunk(self) -> str | None:
        long_enough = [chunk for chunk in self.chunks() if len(chunk) >= MIN_CHUNK]
        return max(long_enough, key=len) if long_enough else None

    def shown(self) -> str:
        text = "".join("…" if piece is None else piece for piece in self.text)
        return re.sub(r"\s+", " ", text).strip()


def normalise(text: str) -> str:
    """Compare texts without rst literal markers, line breaks or repeated spaces."""
    return re.sub(r"\s+", " ", text.replace("``", "")).strip()


def module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["daskdeploy", *parts])


def load_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if any(part in SKIPPED_DIRECTORIES for part in path.relative_to(PACKAGE).parts[:-1]):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = Module(relative, module_name(relative), tree)
        package = module.name if relative.endswith("__init__.py") else module.name.rsplit(".", 1)[0]
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "daskdeploy":
                source = node.module
            else:
                continue
            for alias in node.names:  # a function, or a module (from .. import slurmctl)
                module.imports[alias.asname or alias.name] = (source, alias.name)
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                module.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        module.functions[f"{node.name}.{item.name}"] = item
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                module.constants[node.targets[0].id] = node.value.value
        modules[module.name] = module
    return modules


def exception_classes(modules: dict[str, Module]) -> set[str]:
    """The base exceptions and every class in the package derived from one of them."""
    names = set(BASE_EXCEPTIONS)
    classes = [
        node
        for module in modules.values()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ClassDef)
    ]
    while True:
        found = {
            node.name
            for node in classes
            if any(called_name(base) in names for base in node.bases) and node.name not in names
        }
        if not found:
            return names
        names |= found


def called_name(node: ast.expr) -> str | None:
    """``OptionError`` for ``OptionError`` and ``errors.OptionError``; ``click.X`` too."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the dotted name of the function (or class) it is in."""

    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            yield scope, child
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from visit(child, f"{scope}.{child.name}" if scope else child.name)
            else:
                yield from visit(child, scope)

    yield from visit(tree, "")


def own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``function``, without those of functions defined inside it."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield child
        yield from own_nodes(child)


class Resolver:
    """Turns a message expression into its possible texts (literal pieces and ``None``)."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self.parts: list[tuple[Module, ast.AST, Text]] = []  # items of joined lists

    def texts(self, node: ast.expr, module: Module, function: ast.AST | None, depth: int = 0):
        return self._texts(node, module, function, depth)[:MAX_ALTERNATIVES]

    def _texts(
        self, node: ast.expr, module: Module, function: ast.AST | None, depth: int
    ) -> list[Text]:
        unknown: list[Text] = [(None,)]
        if depth > MAX_DEPTH:
            return unknown
        if isinstance(node, ast.Constant):
            return [(node.value,)] if isinstance(node.value, str) else unknown
        if isinstance(node, ast.JoinedStr):
            pieces: list[list[Text]] = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    pieces.append([(value.value,)])
                elif (
                    isinstance(value, ast.FormattedValue)
                    and value.conversion == -1
                    and value.format_spec is None
                ):
                    # {hint}: follow a variable like a message of its own (" Hint: ..." or
                    # ""), and the items of {"; ".join(hints)}; another call such as
                    # {closest_match_hint(...)} stays a placeholder, and so do filled-in
                    # words such as 'is'/'are' or 'none'.
                    inner = value.value
                    if isinstance(inner, ast.Name | ast.IfExp | ast.JoinedStr) or is_join(inner):
                        followed = self._texts(inner, module, function, depth + 1)
                        pieces.append(followed if has_words(followed) else unknown)
                    else:
                        pieces.append(unknown)
                else:
                    pieces.append(unknown)
            return combine(pieces)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return combine(
                [
                    self._texts(node.left, module, function, depth),
                    self._texts(node.right, module, function, depth),
                ]
            )
        if isinstance(node, ast.IfExp):
            return self._texts(node.body, module, function, depth) + self._texts(
                node.orelse, module, function, depth
            )
        if isinstance(node, ast.Name):
            return self._name(node.id, module, function, depth)
        if isinstance(node, ast.Call):
            return self._call(node, module, function, depth)
        return unknown

    def _name(self, name: str, module: Module, function: ast.AST | None, depth: int):
        values = []
        if function is not None:
            for node in own_nodes(function):
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                    targets = [node.target]
                else:
                    continue
                names = {target.id for target in targets if isinstance(target, ast.Name)}
                if name in names and not is_none(node.value):
                    values.append(node.value)
        if not values and name in module.constants:
            return [(module.constants[name],)]
        texts: list[Text] = []
        for value in values:
            texts += self._texts(value, module, function, depth + 1)
        return texts or [(None,)]

    def _call(self, node: ast.Call, module: Module, function: ast.AST | None, depth: int):
        func = node.func
        if is_join(node):
            # "\n".join(problems): each item is a part of the message, checked on its own
            self._join_items(node.args[0], module, function, depth)
            return [(None,)]
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "format"
            and isinstance(func.value, ast.Constant)
            and isinstance(func.value.value, str)
        ):
            return [tuple(split_format(func.value.value))]
        target = self.function_called(func, module, function)
        if target is None:
            return [(None,)]
        called_module, called = target
        texts: list[Text] = []
        for returned in own_nodes(called):
            if isinstance(returned, ast.Return) and not is_none(returned.value):
                texts += self._texts(returned.value, called_module, called, depth + 1)
        return texts or [(None,)]

    def _join_items(self, items: ast.expr, module: Module, function: ast.AST | None, depth):
        elements: list[ast.expr] = []
        if isinstance(items, ast.List | ast.Tuple):
            elements = list(items.elts)
        elif isinstance(items, ast.ListComp | ast.GeneratorExp):
            elements = [items.elt]
        elif isinstance(items, ast.Name) and function is not None:
            for node in own_nodes(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "append"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == items.id
                    and node.args
                ):
                    elements.append(node.args[0])
                elif isinstance(node, ast.Assign) and any(
                    isinstance(target, ast.Name) and target.id == items.id
                    for target in node.targets
                ):
                    if isinstance(node.value, ast.List | ast.Tuple):
                        elements += node.value.elts
                    elif isinstance(node.value, ast.ListComp | ast.GeneratorExp):
                        elements.append(node.value.elt)
        for element in elements:
            for text in self._texts(element, module, function, depth + 1):
                self.parts.append((module, element, text))

    def function_called(self, func: ast.expr, module: Module, function: ast.AST | None):
        """The daskdeploy function a call runs, if the test can tell which."""
        if isinstance(func, ast.Name):
            if func.id in module.functions:
                return module, module.functions[func.id]
            source, name = module.imports.get(func.id, ("", ""))
            if source in self.modules and name in self.modules[source].functions:
                return self.modules[source], self.modules[source].functions[name]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner == "self" and function is not None:
                for name, candidate in module.functions.items():
                    if candidate is function and "." in name:
                        method = f"{name.split('.')[0]}.{func.attr}"
                        if method in module.functions:
                            return module, module.functions[method]
            source, name = module.imports.get(owner, ("", ""))
            other = self.modules.get(f"{source}.{name}")  # slurmctl.tools_missing_reason()
            if other is not None and func.attr in other.functions:
                return other, other.functions[func.attr]
        return None


def is_join(node: ast.expr) -> bool:
    """``"; ".join(items)``: the items are parts of the message."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and len(node.args) == 1
    )


def is_none(node: ast.expr | None) -> bool:
    """``return``, ``return None`` and ``x = None`` give no text."""
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def has_words(texts: list[Text]) -> bool:
    """Whether any of ``texts`` has a literal piece long enough to say something."""
    return any(
        len(normalise(piece)) >= MIN_CHUNK for text in texts for piece in text if piece is not None
    )


def combine(pieces: list[list[Text]]) -> list[Text]:
    """All texts made by putting one alternative of every piece after the other."""
    texts = [tuple(itertools.chain.from_iterable(choice)) for choice in itertools.product(*pieces)]
    return texts[:MAX_ALTERNATIVES]


def split_format(template: str) -> list[Piece]:
    pieces: list[Piece] = []
    for index, piece in enumerate(re.split(r"\{[^{}]*\}", template)):
        if index:
            pieces.append(None)
        pieces.append(piece)
    return pieces


def message_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg == "message":
            return keyword.value
    return None


def collect_messages() -> tuple[list[Message], list[str], set[str]]:
    """Every message the package can show, the problems met, and the exception classes."""
    modules = load_modules()
    exceptions = exception_classes(modules)
    resolver = Resolver(modules)
    messages: list[Message] = []
    problems: list[str] = []
    for module in modules.values():
        raised_inside = RAISED_INSIDE.get(module.relative, {})
        returned_inside = RETURNED_INSIDE.get(module.relative, {})
        nodes = list(scopes(module.tree))
        enclosing = {
            f"{scope}.{node.name}" if scope else node.name: node
            for scope, node in nodes
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for table, label in (
            (raised_inside, "RAISED_INSIDE"),
            (returned_inside, "RETURNED_INSIDE"),
        ):
            problems += [
                f"{label} names {module.relative}:{scope}, which does not exist; update it"
                for scope in table
                if scope != "*" and scope not in enclosing
            ]
        for scope, node in nodes:
            argument, kind = None, ""
            if isinstance(node, ast.Call):
                name = called_name(node.func)
                if name in exceptions:
                    argument, kind = message_argument(node), name
                elif (
                    isinstance(node.func, ast.Attribute)
                    and name == "missing"
                    and called_name(node.func.value) == "Availability"
                ):
                    argument, kind = message_argument(node), "Availability.missing"
                elif name in ("ValueError", "RuntimeError") and (
                    "*" in raised_inside or scope in raised_inside
                ):
                    argument, kind = message_argument(node), name
            elif isinstance(node, ast.Return) and scope in returned_inside:
                argument, kind = node.value, RETURNED
            if argument is None:
                continue
            where = f"{module.relative}:{node.lineno}"
            place = f"{module.relative}:{scope or '<module>'}"
            for text in resolver.texts(argument, module, enclosing.get(scope)):
                messages.append(Message(where, place, kind, text))
    for module, node, text in resolver.parts:
        where = f"{module.relative}:{getattr(node, 'lineno', '?')}"
        messages.append(Message(where, where, PART, text))
    for table, label in ((RAISED_INSIDE, "RAISED_INSIDE"), (RETURNED_INSIDE, "RETURNED_INSIDE")):
        problems += [
            f"{label} names {relative}, which does not exist; update it"
            for relative in table
            if not (PACKAGE / relative).is_file()
        ]
    return messages, problems, exceptions


def documentation() -> str:
    return normalise(ERRORS_PAGE.read_text(encoding="utf-8"))


def test_every_error_message_is_documented():
    messages, problems, _ = collect_messages()
    page = documentation()
    undocumented: dict[tuple[str, str], Message] = {}
    dynamic_scopes = set()
    for message in messages:
        chunk = message.key_chunk()
        if chunk is None:
            # Items of a joined list and returned texts may be pure data (job ids, ...).
            if message.kind in (PART, RETURNED):
                continue
            dynamic_scopes.add(message.scope)
            if message.scope not in ALLOWED_DYNAMIC:
                problems.append(
                    f"{message.where} ({message.kind}): no literal text in {message.shown()!r}; "
                    f"give the message literal words, or add {message.scope!r} to "
                    f"ALLOWED_DYNAMIC in this test with the reason"
                )
        elif chunk not in page:
            undocumented.setdefault((message.where, chunk), message)
    problems += [
        f"ALLOWED_DYNAMIC lists {scope!r}, which raises no message without literal text "
        f"any more; remove it"
        for scope in ALLOWED_DYNAMIC
        if scope not in dynamic_scopes
    ]
    lines = [
        f"  {message.where} ({message.kind}): {message.shown()}\n      missing text: {chunk!r}"
        for (_, chunk), message in sorted(undocumented.items(), key=lambda item: sort_key(item[0]))
    ]
    report = []
    if lines:
        report += [
            f"{len(lines)} message(s) are not in docs/errors.rst. Add each (with example values "
            f"for …) under its exception's section, with what causes it and how to fix it:",
            *lines,
        ]
    if problems:
        report += ["Problems of the check itself:", *(f"  {problem}" for problem in problems)]
    assert not report, "\n".join(report)


def sort_key(key: tuple[str, str]) -> tuple[str, int, str]:
    where, chunk = key
    path, _, line = where.rpartition(":")
    return path, int(line) if line.isdigit() else 0, chunk


def test_the_scan_sees_every_kind_of_message():
    """Guard the check itself: a refactoring must not make it silently check nothing."""
    messages, _, exceptions = collect_messages()
    assert exceptions >= EXPECTED_EXCEPTIONS
    assert {"CommandError", "UserError"} <= exceptions  # subclasses found in the sources
    sites = {message.where for message in messages if message.kind not in (PART, RETURNED)}
    assert len(sites) >= 100
    kinds = {message.kind for message in messages}
    assert {
        "Availability.missing",
        "ValueError",
        "RuntimeError",
        "OptionError",
        "BadParameter",
        "UserError",
        "CommandError",
        PART,
        RETURNED,
    } <= kinds
    checked = {message.key_chunk() for message in messages} - {None}
    # Texts reached only by following a joined list, a returned text, a called function:
    assert any(chunk.startswith("connection refused on port") for chunk in checked)
    assert any("apt-get install slurm-client" in chunk for chunk in checked)


def test_normalise_strips_rst_literals_and_line_breaks():
    assert normalise("``Backend 'mpi'\n   cannot run``  here") == "Backend 'mpi' cannot run here"
