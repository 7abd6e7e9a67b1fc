"""One vocabulary: the flags, options and defaults the docs name are the code's.

Every ``daskdeploy <command> ...`` line in README.md, docs/*.rst and examples/*/README.md
(console and shell blocks, ``$`` lines, inline literals) is checked against the click
commands themselves; every backend option the docs name (``-o key=value``, ``--option``,
``deploy(..., key=...)``, YAML config and profile blocks, ``DASK_DASKDEPLOY__*``
variables, ``daskdeploy.<backend>.<key>`` config keys, migration tables) against the
backends' declarations; every default the docs quote (``--dry-run`` listings, "60 by
default", "defaults to", "(default: X)") against the packaged defaults.

Static and fast: nothing is started. A failure lists one ``file:line: what is wrong`` line
per mismatch. Other tools' command lines (``srun``, ``sbatch``, ``mpiexec``, ``qsub``,
``dask worker``, ...) are not daskdeploy's and are not checked; ``daskdeploy sbatch``
accepts sbatch's own options too (it writes them into the script), so those are
checked against sbatch's option list below.
"""

from __future__ import annotations

import ast
import difflib
import re
import shlex
import textwrap
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import click
import pytest
import yaml

from conftest import REPO

# --------------------------------------------------------------------------- the code


@dataclass(frozen=True)
class Vocabulary:
    """What the code declares: commands, backends' options (aliases too) and defaults."""

    cli: click.Group
    #: backend -> accepted name (option or alias) -> canonical option name
    names: dict[str, dict[str, str]]
    #: backend -> option name -> Option
    options: dict[str, dict[str, Any]]
    #: backend -> option name -> default after conversion (what --dry-run prints)
    defaults: dict[str, dict[str, Any]]
    #: keys of the ``daskdeploy.named`` config section
    named_keys: frozenset[str]
    #: keyword arguments of deploy() besides the backend options
    deploy_keywords: frozenset[str] = frozenset({"backend", "profile", "attach"})

    @property
    def backends(self) -> list[str]:
        return list(self.names)

    def accepts(self, key: str, backends: Iterable[str] | None) -> bool:
        key = key.replace("-", "_")
        chosen = [b for b in (backends or ()) if b in self.names] or self.backends
        return any(key in self.names[b] for b in chosen)


@cache
def vocabulary() -> Vocabulary:
    from daskdeploy.cli import cli
    from daskdeploy.config import backend_defaults, packaged_defaults
    from daskdeploy.options import resolve_options
    from daskdeploy.registry import backend_names, get_backend

    names: dict[str, dict[str, str]] = {}
    options: dict[str, dict[str, Any]] = {}
    defaults: dict[str, dict[str, Any]] = {}
    for backend in backend_names():
        declared = get_backend(backend).options()
        options[backend] = {option.name: option for option in declared}
        names[backend] = {option.name: option.name for option in declared}
        for option in declared:
            names[backend].update(dict.fromkeys(option.aliases, option.name))
        packaged = backend_defaults(backend)
        defaults[backend] = dict(
            resolve_options(backend, declared, [("default", packaged)]).settings
        )
    named = frozenset(packaged_defaults().get("named", {}))
    return Vocabulary(cli, names, options, defaults, named)


# --------------------------------------------------------------------------- other tools


def _words(text: str) -> list[str]:
    return text.split()


#: sbatch's long options: True when they take a value, None when the value is optional
#: (``--exclusive[=user]``: only with ``=``), False for plain flags.
SBATCH_LONG = {
    **dict.fromkeys(
        _words(
            "account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters "
            "comment constraint container container-id core-spec cores-per-socket cpu-freq "
            "cpus-per-gpu cpus-per-task deadline delay-boot dependency distribution error "
            "exclude export export-file extra extra-node-info gid gpu-bind gpu-freq gpus "
            "gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint input job-name "
            "kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind "
            "mem-per-cpu mem-per-gpu mincpus network nodefile nodelist nodes ntasks "
            "ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode output "
            "partition power prefer priority profile qos reservation signal sockets-per-node "
            "switches thread-spec threads-per-core time time-min tmp tres-per-task uid "
            "wait-all-nodes wckey wrap"
        ),
        True,
    ),
    **dict.fromkeys(_words("exclusive get-user-env nice no-kill propagate"), None),
    **dict.fromkeys(
        _words(
            "contiguous hold ignore-pbs no-requeue overcommit oversubscribe parsable quiet reboot "
            "requeue spread-job test-only use-min-nodes verbose wait help usage version"
        ),
        False,
    ),
}

#: sbatch's short options, for the hint when ``daskdeploy sbatch`` has none of that name
#: (short flags mean the same in every daskdeploy command, so none pass through).
SBATCH_SHORT_NAMES = {
    "-A": "--account", "-a": "--array", "-b": "--begin", "-C": "--constraint",
    "-c": "--cpus-per-task", "-D": "--chdir", "-d": "--dependency", "-e": "--error",
    "-G": "--gpus", "-H": "--hold", "-J": "--job-name", "-L": "--licenses", "-N": "--nodes",
    "-n": "--ntasks", "-o": "--output", "-p": "--partition", "-q": "--qos", "-t": "--time",
    "-w": "--nodelist", "-x": "--exclude",
}  # fmt: skip

#: Words that name another tool in a paragraph: its flags are not daskdeploy's.
OTHER_TOOLS = re.compile(
    r"(?<![\w-])(srun|sbatch|salloc|squeue|scancel|sacct|scontrol|mpiexec|mpirun|qsub|qstat|"
    r"qconf|bsub|bjobs|condor_submit|oarsub|msub|dask[ -]worker|dask[ -]scheduler|dask-ssh|"
    r"pip|ssh|sshd|sphinx|nox|pytest|git|jupyter|python|seff|ps|kill)(?![\w-])"
)

#: Subcommand names that are also ordinary words or other tools' commands: a bare
#: ``ls -l`` or ``sbatch -n 5`` literal is not daskdeploy's.
AMBIGUOUS_SUBCOMMANDS = {"ls", "sbatch", "data", "profile", "scale", "logs", "up", "down"}

# --------------------------------------------------------------------------- documents


@dataclass
class Block:
    """A code block: language, the line number of its first line, its (dedented) lines."""

    lang: str
    line: int
    lines: list[str]


@dataclass
class Paragraph:
    """Prose lines without a blank line between them, with the section they are in."""

    line: int
    text: str
    heading: str = ""


@dataclass
class Page:
    """One document, cut into code blocks and prose paragraphs."""

    path: str
    blocks: list[Block] = field(default_factory=list)
    paragraphs: list[Paragraph] = field(default_factory=list)
    markdown: bool = False
    raw: list[str] = field(default_factory=list)

    def literals(self, paragraph: Paragraph) -> Iterator[tuple[int, str]]:
        """(line, text) of every inline literal of a paragraph, newlines made spaces."""
        pattern = r"`([^`]+)`" if self.markdown else r"``(.+?)``"
        for match in re.finditer(pattern, paragraph.text, re.S):
            line = paragraph.line + paragraph.text.count("\n", 0, match.start())
            yield line, " ".join(match.group(1).split())


_UNDERLINE = re.compile(r"^([-=~^\"'`#*+])\1{2,}\s*$")
_CODE_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)")


def parse_rst(path: str, text: str) -> Page:
    page = Page(path, raw=text.splitlines())
    lines = page.raw
    heading = ""
    paragraph: list[str] = []
    start = 0

    def flush() -> None:
        if paragraph:
            page.paragraphs.append(Paragraph(start + 1, "\n".join(paragraph), heading))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _CODE_DIRECTIVE.match(line)
        stripped = line.strip()
        if i + 1 < len(lines) and stripped and _UNDERLINE.match(lines[i + 1]) and not directive:
            if not _UNDERLINE.match(line):
                flush()
                heading = stripped
                page.paragraphs.append(Paragraph(i + 1, stripped, heading))
            i += 2
            continue
        literal = not directive and stripped.endswith("::") and not stripped.startswith("..")
        if directive or literal:
            if literal:
                if not paragraph:
                    start = i
                paragraph.append(line)
            flush()
            indent = len(directive.group(1)) if directive else len(line) - len(line.lstrip())
            lang = (directive.group(2) if directive else "") or "text"
            j = i + 1
            while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]) and directive:
                j += 1
            body: list[str] = []
            first = None
            while j < len(lines):
                current = lines[j]
                if current.strip() and len(current) - len(current.lstrip()) <= indent:
                    break
                if current.strip() and first is None:
                    first = j
                if first is not None:
                    body.append(current)
                j += 1
            while body and not body[-1].strip():
                body.pop()
            if first is not None:
                page.blocks.append(
                    Block(lang, first + 1, textwrap.dedent("\n".join(body)).split("\n"))
                )
            i = j
            continue
        if not stripped:
            flush()
        elif stripped.startswith("..") and not stripped.startswith(".. list-table"):
            flush()  # comments and directives; their indented content is prose
        else:
            if not paragraph:
                start = i
            paragraph.append(line)
        i += 1
    flush()
    return page


def parse_markdown(path: str, text: str) -> Page:
    page = Page(path, markdown=True, raw=text.splitlines())
    lines = page.raw
    heading = ""
    paragraph: list[str] = []
    start = 0

    def flush() -> None:
        if paragraph:
            page.paragraphs.append(Paragraph(start + 1, "\n".join(paragraph), heading))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)```\s*(\S*)", line)
        if fence:
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            body = textwrap.dedent("\n".join(lines[i + 1 : j])).split("\n")
            page.blocks.append(Block(fence.group(2) or "text", i + 2, body))
            i = j + 1
            continue
        if line.startswith("#"):
            flush()
            heading = line.lstrip("#").strip()
            page.paragraphs.append(Paragraph(i + 1, heading, heading))
        elif not line.strip():
            flush()
        else:
            if not paragraph:
                start = i
            paragraph.append(line)
        i += 1
    flush()
    return page


def doc_pages() -> list[Page]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.rst"))]
    paths += sorted((REPO / "examples").rglob("README.md"))
    pages = []
    for path in paths:
        if "_build" in path.parts:
            continue
        relative = str(path.relative_to(REPO))
        text = path.read_text(encoding="utf-8")
        pages.append(
            parse_markdown(relative, text) if path.suffix == ".md" else parse_rst(relative, text)
        )
    return pages


#: Backend pages: options named there are that backend's unless the text names another.
PAGE_BACKENDS = {
    "docs/local.rst": ["local"],
    "docs/slurm.rst": ["slurm"],
    "docs/allocation.rst": ["allocation"],
    "docs/ssh.rst": ["ssh"],
    "docs/mpi.rst": ["mpi"],
    "docs/batchjob.rst": ["batchjob"],
    "docs/batch-systems.rst": ["sge", "pbs", "lsf", "htcondor", "oar", "moab"],
}


def context_backends(page: Page, paragraph: Paragraph | None, text: str = "") -> list[str]:
    """The backends a piece of text is about: named in it, else its section's, its page's."""
    known = vocabulary().backends
    named = re.findall(
        r"""(?:deploy\(\s*["']|--backend[ =]|-b |daskdeploy\.|DASKDEPLOY__|backend: ?)(\w+)""",
        text,
        re.I,
    )
    named = [name.lower() for name in named if name.lower() in known]
    if named:
        return named
    if paragraph is not None:
        in_heading = [b for b in known if re.search(rf"\b{b}\b", paragraph.heading, re.I)]
        page_backends = PAGE_BACKENDS.get(page.path, [])
        in_heading = [b for b in in_heading if not page_backends or b in page_backends]
        if in_heading:
            return in_heading
    return PAGE_BACKENDS.get(page.path, [])


# --------------------------------------------------------------------------- commands


@dataclass
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Command:
    """One daskdeploy command line found in the docs."""

    path: str
    line: int
    text: str  # everything after "daskdeploy "
    complete: bool  # a command as typed (code block), not a mention in prose
    strict_name: bool  # an unknown subcommand is a mistake (command position)


_DASKDEPLOY = re.compile(r"(?<![\w.\-/$])(?:[\w.\-~]*/)?daskdeploy[ \t]+(?=[a-z])")
_SHELL_END = re.compile(r"`|;|\s(?:\|\|?|&&|>>?|2>&1|2>|<)(?:\s|$)|\)\s*$|\$\(|\s#\s")


def commands_in(text: str) -> Iterator[tuple[int, str, bool]]:
    """(offset, text after 'daskdeploy ', at command position) of each command in text."""
    for match in _DASKDEPLOY.finditer(text):
        rest = text[match.end() :]
        end = _SHELL_END.search(rest)
        if end:
            rest = rest[: end.start()]
        before = text[: match.start()].rstrip()
        position = (
            not before
            or before.endswith(("$", "|", "&&", ";", "(", "{", "srun", "exec", "-m", "time"))
            or re.search(r"(^|\s)(srun|mpiexec|mpirun|exec)( -\S+( \S+)?)*$", before) is not None
        )
        yield match.start(), rest.strip(), position


def split_tokens(text: str) -> list[str]:
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote in a shortened command
        tokens = text.split()
    return tokens


def block_commands(page: Page) -> Iterator[Command]:
    for block in page.blocks:
        if block.lang in ("python", "py", "pycon", "yaml", "ini", "toml", "json", "rst"):
            continue
        console = block.lang in ("console", "shell-session")
        i = 0
        while i < len(block.lines):
            line = block.lines[i]
            number = block.line + i
            prompt = line.lstrip().startswith("$ ")
            while line.rstrip().endswith("\\") and i + 1 < len(block.lines):
                i += 1
                line = line.rstrip()[:-1] + " " + block.lines[i].strip()
            i += 1
            if console and not prompt:
                # Output: job scripts printed by a command are commands too, but any
                # daskdeploy word in it may be prose; check known subcommands only.
                for _, text, _ in commands_in(line):
                    yield Command(page.path, number, text, True, False)
                continue
            body = line.lstrip()
            body = body[2:] if body.startswith("$ ") else body
            if body.startswith("#"):
                continue
            for _, text, position in commands_in(body):
                yield Command(page.path, number, text, True, position)


def prose_commands(page: Page) -> Iterator[Command]:
    for paragraph in page.paragraphs:
        for line, literal in page.literals(paragraph):
            for offset, text, _ in commands_in(literal):
                yield Command(page.path, line, text, False, offset == 0)
            first = literal.split(" ", 1)
            if (
                len(first) == 2
                and first[0] in command_names()
                and first[0] not in AMBIGUOUS_SUBCOMMANDS
                and first[1].startswith("-")
            ):  # ``run --attach``: a subcommand with its flags
                yield Command(page.path, line, literal, False, True)


@cache
def command_names() -> frozenset[str]:
    cli = vocabulary().cli
    return frozenset(cli.list_commands(click.Context(cli)))


def _option_lookup(command: click.Command) -> dict[str, click.Option]:
    lookup: dict[str, click.Option] = {}
    for parameter in command.params:
        if isinstance(parameter, click.Option):
            for name in (*parameter.opts, *parameter.secondary_opts):
                lookup[name] = parameter
    return lookup


def _takes_value(option: click.Option) -> bool:
    return not option.is_flag and not option.count


def _looks_like_flag(token: str) -> bool:
    return re.match(r"^--?[A-Za-z]", token) is not None


def _is_placeholder(token: str) -> bool:
    return token in ("...", "…", "[...]", "[OPTIONS]", "[ARGS]") or token.startswith("[")


@dataclass
class Parsed:
    """What one command line says: problems, and the backend options it sets."""

    problems: list[str] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)
    #: the backends its options are for (``--backend``; ``jobscript --system``), if named
    backends: list[str] = field(default_factory=list)
    command: str = ""


def check_command(text: str, complete: bool, strict_name: bool) -> Parsed:
    """Check the tokens after ``daskdeploy`` against the click command they name."""
    result = Parsed()
    tokens = [t.strip("[]") if t.startswith("[-") else t for t in split_tokens(text)]
    cli = vocabulary().cli
    command: click.Command = cli
    path = "daskdeploy"
    while isinstance(command, click.Group) and tokens:
        name = tokens[0]
        sub = command.get_command(click.Context(command), name)
        if sub is None:
            if command is cli:
                if strict_name and re.fullmatch(r"[a-z][a-z-]*", name):
                    result.problems.append(f"`daskdeploy {name}`: no such command")
                return result
            if _looks_like_flag(name) or not strict_name:
                break
            result.problems.append(f"`{path} {name}`: no such command")
            return result
        command, path = sub, f"{path} {name}"
        tokens = tokens[1:]
    result.command = path
    if command is cli:
        return result
    lookup = _option_lookup(command)
    lookup.setdefault("--help", None)  # type: ignore[arg-type]
    lookup.setdefault("-h", None)  # type: ignore[arg-type]
    script_ends = command.context_settings.get("allow_interspersed_args") is False
    sbatch = path == "daskdeploy sbatch"
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        i += 1
        if _is_placeholder(token):
            continue
        if token == "--":
            break
        if not _looks_like_flag(token):
            if script_ends and not isinstance(command, click.Group):
                break  # SCRIPT: what follows is the script's own arguments
            continue
        if token.startswith("--"):
            name, _, value = token.partition("=")
        else:
            name, value = token[:2], token[2:]
        if name not in lookup:
            not_here = getattr(command, "not_here", {})
            if sbatch and _sbatch_option(token, following, not_here) is not None:
                i += _sbatch_option(token, following, not_here) or 0
                continue
            known = sorted(n for n in lookup if n.startswith("--") and n != "--help")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"its options: {', '.join(known)}"
            if sbatch and name in SBATCH_SHORT_NAMES:
                hint = f"for sbatch's {name} write {SBATCH_SHORT_NAMES[name]}"
                if name in not_here:
                    hint = f"{name} means something else in daskdeploy; " + hint
            result.problems.append(f"`{path}` has no option {name}; {hint}")
            continue
        option = lookup[name]
        if option is None:
            continue
        if not _takes_value(option):
            if value:
                result.problems.append(f"`{path} {name}` takes no value, got {token!r}")
            continue
        if not value:
            if following is None:
                if complete:
                    result.problems.append(f"`{path} {name}` needs a value")
                continue
            if _looks_like_flag(following) and not re.fullmatch(r"-\d+", following):
                result.problems.append(
                    f"`{path} {name}` needs a value, but is followed by {following}"
                )
                continue
            value = following
            i += 1
        if "--option" in option.opts:
            result.assignments.append(value)
        elif "--backend" in option.opts:
            result.backends = [value]
        elif "--system" in option.opts:  # jobscript: worker jobs, or the job in place
            result.backends = [value, "batchjob", "allocation"]
    return result


@cache
def _sbatch_tables() -> tuple[dict[str, bool | None], dict[str, str], set[str]]:
    """sbatch's long options (takes a value: True, only with ``=``: None, no: False), its
    short options (letter -> long option) and the options the job header cannot take.

    The backend's own table when it has one (``daskdeploy sbatch`` passes sbatch's
    options through), else the list above, with no short option passed on.
    """
    try:
        from daskdeploy.backends.slurm import sbatch_options
    except ImportError:
        return SBATCH_LONG, {}, set()
    takes = {"none": False, "optional": None, "required": True}
    long = {name: takes.get(kind, True) for name, kind in sbatch_options.LONG_OPTIONS.items()}
    short = dict(getattr(sbatch_options, "SHORT_OPTIONS", {}))
    return long, short, set(getattr(sbatch_options, "NOT_PASSED", ()))


def _sbatch_option(token: str, following: str | None, not_here: dict[str, Any]) -> int | None:
    """How many more tokens an sbatch option passed through takes (0 or 1); None if
    ``daskdeploy sbatch`` does not pass it on."""
    long, short, not_passed = _sbatch_tables()
    if token.startswith("--"):
        name, equals, _ = token[2:].partition("=")
        if name not in long or name in not_passed:
            return None
        return 1 if long[name] and not equals and following is not None else 0
    letter, rest = token[1:2], token[2:]
    if f"-{letter}" in not_here or letter not in short or short[letter] in not_passed:
        return None
    return 1 if long.get(short[letter]) and not rest and following is not None else 0


# --------------------------------------------------------------------------- options


def check_assignment(assignment: str, backends: list[str]) -> str | None:
    key = assignment.partition("=")[0].strip()
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
        return None  # KEY, NAME, ...: a placeholder
    if vocabulary().accepts(key, backends):
        return None
    where = f"backend {'/'.join(backends)}" if backends else "any backend"
    return f"option {key!r} (in {assignment!r}) is not an option of {where}"


def deploy_calls(source: str) -> Iterator[tuple[int, str | None, list[str]]]:
    """(line offset, backend, keyword names) of every deploy(...) call in Python source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        cleaned = "\n".join(re.sub(r"^(>>>|\.\.\.) ?", "", line) for line in source.splitlines())
        try:
            tree = ast.parse(cleaned)
        except SyntaxError:
            return
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in ("deploy", "save_profile"):
            continue
        backend = None
        first = node.args[:1] if name == "deploy" else node.args[1:2]
        if first and isinstance(first[0], ast.Constant) and isinstance(first[0].value, str):
            backend = first[0].value
        keywords = [k.arg for k in node.keywords if k.arg is not None]
        for keyword in node.keywords:
            if keyword.arg == "backend" and isinstance(keyword.value, ast.Constant):
                backend = str(keyword.value.value)
        yield node.lineno - 1, backend, keywords


def check_keywords(backend: str | None, keywords: list[str], fallback: list[str]) -> list[str]:
    vocab = vocabulary()
    backends = [backend] if backend in vocab.names else fallback
    problems = []
    for keyword in keywords:
        if keyword in vocab.deploy_keywords or vocab.accepts(keyword, backends):
            continue
        where = f"backend {'/'.join(backends)}" if backends else "any backend"
        problems.append(f"deploy(..., {keyword}=...): {keyword!r} is not an option of {where}")
    return problems


def yaml_problems(block: Block) -> Iterator[tuple[int, str]]:
    """Keys of a ``daskdeploy:`` YAML block that no backend (or section) declares."""
    vocab = vocabulary()
    try:
        root = yaml.compose("\n".join(block.lines))
    except yaml.YAMLError:
        return
    if not isinstance(root, yaml.MappingNode):
        return
    for key, value in root.value:
        if key.value != "daskdeploy" or not isinstance(value, yaml.MappingNode):
            continue
        for section, content in value.value:
            line = section.start_mark.line
            name = section.value
            if name == "backend":
                continue
            if name in ("profiles",) and isinstance(content, yaml.MappingNode):
                for _profile, settings in content.value:
                    if not isinstance(settings, yaml.MappingNode):
                        continue
                    mapping = {k.value: v for k, v in settings.value}
                    backend_node = mapping.get("backend")
                    backend = backend_node.value if backend_node is not None else None
                    backends = [backend] if backend in vocab.names else []
                    for option, _ in settings.value:
                        if option.value in ("backend", "profile"):
                            continue
                        if not vocab.accepts(option.value, backends):
                            yield (
                                option.start_mark.line,
                                (
                                    f"profile option {option.value!r} is not an option of "
                                    f"backend {backend}"
                                ),
                            )
                continue
            if name == "named" and isinstance(content, yaml.MappingNode):
                for option, _ in content.value:
                    if option.value not in vocab.named_keys:
                        yield (
                            option.start_mark.line,
                            (
                                f"daskdeploy.named.{option.value} is no setting (there are: "
                                f"{', '.join(sorted(vocab.named_keys))})"
                            ),
                        )
                continue
            if name not in vocab.names:
                yield line, f"daskdeploy.{name} is neither a backend nor a daskdeploy setting"
                continue
            if isinstance(content, yaml.MappingNode):
                for option, _ in content.value:
                    if not vocab.accepts(option.value, [name]):
                        yield (
                            option.start_mark.line,
                            (f"{option.value!r} is not an option of backend {name}"),
                        )


_ENV = re.compile(r"DASK_DASKDEPLOY__([A-Z]+)__([A-Z_]*[A-Z])\b")
_DOTTED = re.compile(r"(?<![\w.])daskdeploy\.([a-z]+)\.([a-z_]+)\b(?!\.\w|\()")


def config_key_problems(text: str) -> Iterator[str]:
    vocab = vocabulary()
    for section, key in _ENV.findall(text):
        backend, option = section.lower(), key.lower()
        if backend in vocab.names and not vocab.accepts(option, [backend]):
            yield f"DASK_DASKDEPLOY__{section}__{key}: {option!r} is not an option of {backend}"
    for backend, option in _DOTTED.findall(text):
        if backend in vocab.names and not vocab.accepts(option, [backend]):
            yield f"daskdeploy.{backend}.{option}: {option!r} is not an option of {backend}"


def list_tables(page: Page) -> Iterator[tuple[int, list[list[tuple[int, str]]]]]:
    """(line, rows) of every rst list-table; a row is its cells as (line, text)."""
    lines = page.raw
    for i, line in enumerate(lines):
        if not line.strip().startswith(".. list-table"):
            continue
        indent = len(line) - len(line.lstrip())
        rows: list[list[tuple[int, str]]] = []
        for j in range(i + 1, len(lines)):
            current = lines[j]
            if current.strip() and len(current) - len(current.lstrip()) <= indent:
                break
            stripped = current.strip()
            if stripped.startswith("* - "):
                rows.append([(j + 1, stripped[4:])])
            elif stripped.startswith("- ") and rows:
                rows[-1].append((j + 1, stripped[2:]))
            elif stripped and rows and not stripped.startswith(":"):
                number, cell = rows[-1][-1]
                rows[-1][-1] = (number, f"{cell} {stripped}")
        yield i + 1, rows


def table_problems(page: Page) -> Iterator[Problem]:
    """Migration tables (second column "daskdeploy"): "Same name(s)" rows name options,
    "Not offered" rows name none, and option-like names in the daskdeploy column exist."""
    vocab = vocabulary()
    for _, rows in list_tables(page):
        if len(rows) < 2 or len(rows[0]) < 2 or rows[0][1][1].strip().lower() != "daskdeploy":
            continue
        backends = PAGE_BACKENDS.get(page.path, [])
        for row in rows[1:]:
            if len(row) < 2:
                continue
            (line, theirs), (_, ours) = row[0], row[1]
            their_names = re.findall(r"``([a-z][a-z0-9_]*)``", theirs)
            if ours.startswith("Same name"):
                for name in their_names:
                    if not vocab.accepts(name, backends):
                        yield Problem(
                            page.path,
                            line,
                            f"table says {name!r} is the same "
                            f"name in daskdeploy, but no {'/'.join(backends) or 'backend'} "
                            "option has it",
                        )
            if ours.startswith("Not offered"):
                for name in their_names:
                    if vocab.accepts(name, backends):
                        yield Problem(
                            page.path,
                            line,
                            f"table says {name!r} is not offered, but it is an option",
                        )


# --------------------------------------------------------------------------- defaults

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "eight": 8,
    "ten": 10,
    "an": 1,
    "a": 1,
}
_DEFAULT_PHRASE = re.compile(
    r"(?P<before>(?:``[^`]+``|[\w.:-]+(?:\s(?:GiB|GB|MiB|MB|s|seconds|minutes|hours?))?))"
    r"\s+by\s+default"
    r"|defaults?\s+to\s+(?P<to>``[^`]+``|[\w.:-]+(?:\s(?:GiB|GB|MiB|MB|s|seconds|minutes|hours?))?)"
    r"|\(default:?\s(?P<paren>[^)]+)\)"
    r"|\bdefault:\s(?P<colon>``[^`]+``|[\w.:-]+)"
    r"|\b[Bb]y\s+default\b"
)
_READABLE_VALUE = re.compile(
    r"``[^`]+``|[\d.]+(?: ?(?:GiB|GB|MiB|MB|s|seconds|minutes|hours?))?"
    r"|(?:one|two|three|four|five|six|eight|ten|an) (?:seconds?|minutes?|hours?)"
    r"|on|off|true|false|yes|no|null|none",
    re.I,
)


def _doc_value(text: str) -> Any:
    text = text.strip().strip("`").strip()
    words = text.split()
    if words and words[0].lower() in _NUMBER_WORDS and len(words) > 1:
        text = " ".join([str(_NUMBER_WORDS[words[0].lower()]), *words[1:]])
    if text.lower() in ("on", "yes"):
        return True
    if text.lower() in ("off", "no"):
        return False
    if text.lower() in ("null", "none"):
        return None
    from daskdeploy.cli import parse_option_value

    return parse_option_value(text)


def _same(option: Any, quoted: Any, default: Any) -> bool:
    if quoted == default:
        return True
    try:
        converted = option.check(quoted)
    except (ValueError, TypeError):
        return False
    return converted == default or (
        isinstance(default, float)
        and isinstance(converted, float)
        and abs(converted - default) < 1e-9
    )


@dataclass
class DefaultsFinding:
    problems: list[Problem] = field(default_factory=list)
    unparsed: list[Problem] = field(default_factory=list)


_SENTENCE_END = re.compile(r"[.;]\s|\n\s*(?:[*-]|\d+\.|\* -)\s")


def _sentence(text: str, position: int) -> tuple[int, int]:
    """Start and end of the sentence (or list item) around ``position``."""
    start, end = 0, len(text)
    for match in _SENTENCE_END.finditer(text):
        if match.end() <= position:
            start = match.end()
        elif match.start() >= position:
            end = match.start()
            break
    return start, end


def _option_near(text: str, start: int, end: int, names: set[str]) -> str | None:
    """The option named last in ``text[start:end]``, as ``name`` or ``name=...``."""
    found = None
    for match in re.finditer(r"``([a-z_]+)(?:=[^`]*)?``", text[start:end]):
        if match.group(1) in names:
            found = match.group(1)
    return found


def _flag_default(page: Page, text: str, start: int, end: int, quoted: str) -> str | None:
    """Check "``-t/--time`` (default ``01:00:00``)" against the click option's default.

    Returns None when no flag is named before the phrase, "" when the default agrees,
    else the problem.
    """
    flags = re.findall(r"``(?:-\w/)?(--[\w-]+)(?: [A-Z]+)?``", text[start:end])
    if not flags:
        return None
    flag = flags[-1]
    cli = vocabulary().cli
    pattern = r"`([^`]+)`" if page.markdown else r"``(.+?)``"
    mentioned = {
        _mentioned_command(" ".join(m.group(1).split())) for m in re.finditer(pattern, text, re.S)
    }
    commands = {}
    stack: list[tuple[str, click.Command]] = [("daskdeploy", cli)]
    while stack:
        path, command = stack.pop()
        if isinstance(command, click.Group):
            context = click.Context(command)
            stack += [
                (f"{path} {n}", command.get_command(context, n))
                for n in command.list_commands(context)
            ]
        option = _option_lookup(command).get(flag)
        if option is not None:
            commands[path] = option
    about = {p: o for p, o in commands.items() if p.split(" ")[1] in mentioned} or commands
    if not about:
        return None
    value = quoted.strip().strip("`")
    defaults = {p: o.default for p, o in about.items()}
    if any(str(default) == value for default in defaults.values()):
        return ""
    if not re.fullmatch(r"[\w.:%-]+", value):
        return None  # prose, not a value
    shown = ", ".join(f"{p}: {d!r}" for p, d in sorted(defaults.items()))
    return f"says {flag} defaults to {value!r}; the code's default is {shown}"


def defaults_in(page: Page) -> DefaultsFinding:
    vocab = vocabulary()
    finding = DefaultsFinding()
    # --dry-run / profile show listings: "  name = value  (default)" under "Backend: X".
    for block in page.blocks:
        backend = None
        for offset, line in enumerate(block.lines):
            chosen = re.search(r"Backend: (\w+)", line)
            if chosen:
                backend = chosen.group(1)
            listed = re.match(r"^\s+(\w+)\s+= (.+?)\s+\(default\)\s*$", line)
            if not listed:
                continue
            if backend not in vocab.defaults:
                finding.unparsed.append(
                    Problem(
                        page.path,
                        block.line + offset,
                        "a '(default)' listing without a 'Backend: NAME' line above it",
                    )
                )
                continue
            name, shown = listed.groups()
            if name not in vocab.defaults[backend]:
                finding.problems.append(
                    Problem(
                        page.path,
                        block.line + offset,
                        f"listing shows option {name!r}, which backend {backend} does not have",
                    )
                )
                continue
            expected = repr(vocab.defaults[backend][name])
            if shown != expected:
                finding.problems.append(
                    Problem(
                        page.path,
                        block.line + offset,
                        f"listing shows {backend} default {name} = {shown}; the code's: {expected}",
                    )
                )
    # Prose: "60 by default", "defaults to X", "(default: X)" next to an option's name.
    all_names = {name for names in vocab.names.values() for name in names}
    for paragraph in page.paragraphs:
        text = paragraph.text
        for match in _DEFAULT_PHRASE.finditer(text):
            line = paragraph.line + text.count("\n", 0, match.start())
            quoted = next((v for v in match.group("before", "to", "paren", "colon") if v), "")
            quoted = quoted.rstrip(".,;:")
            snippet = " ".join(match.group(0).split())
            start, end = _sentence(text, match.start())
            sentence = text[start:end]
            name = None
            for claim in re.finditer(r"``([a-z_]+)(?:=|: )([^`]+)``", text[start:end]):
                near = start + claim.start() >= match.start() - 60
                near = near and start + claim.start() <= match.end() + 40
                if near and claim.group(1) in all_names:
                    # ``worker_dashboard=true`` (off by default); (``threads_per_worker: 1``)
                    name = claim.group(1)
                    if not quoted or not _READABLE_VALUE.fullmatch(quoted.strip()):
                        quoted = claim.group(2)
                    break
            else:
                name = _option_near(text, start, match.start() + 1, all_names)
            if name is None and quoted:
                flag_claim = _flag_default(page, text, start, match.start(), quoted)
                if flag_claim is not None:
                    if flag_claim:
                        finding.problems.append(Problem(page.path, line, flag_claim))
                    continue
            if name is None or quoted.strip("`") == name:
                finding.unparsed.append(
                    Problem(page.path, line, f"no option named near {snippet!r}")
                )
                continue
            if not _READABLE_VALUE.fullmatch(quoted.strip()):
                finding.unparsed.append(
                    Problem(
                        page.path, line, f"{snippet!r}: {quoted!r} is no value this test can read"
                    )
                )
                continue
            value = _doc_value(quoted)
            declaring = [b for b in vocab.backends if name in vocab.names[b]]
            every = re.search(r"\b(every|all|each)\b[^.]*\bbackends?\b", sentence) is not None
            backends = (
                declaring
                if every
                else [
                    b
                    for b in context_backends(page, paragraph, sentence) or declaring
                    if b in declaring
                ]
                or declaring
            )
            canonical = vocab.names[backends[0]][name]
            agree = [
                _same(vocab.options[b][canonical], value, vocab.defaults[b][canonical])
                for b in backends
            ]
            if all(agree) if every else any(agree):
                continue
            automatic = all(vocab.defaults[b][canonical] is None for b in backends)
            try:
                vocab.options[backends[0]][canonical].check(value)
            except (ValueError, TypeError):
                automatic = True
            if automatic:  # null means "chosen at start"; the docs say what is chosen
                finding.unparsed.append(
                    Problem(
                        page.path,
                        line,
                        f"{snippet!r}: cannot read {quoted!r} as a value of {canonical}",
                    )
                )
                continue
            if every:
                backends = [b for b, same in zip(backends, agree, strict=True) if not same]
            actual = ", ".join(f"{b}: {vocab.defaults[b][canonical]!r}" for b in backends)
            finding.problems.append(
                Problem(
                    page.path,
                    line,
                    f"says {canonical} is {quoted.strip()!r} by default ({snippet!r}); the code's "
                    f"default is {actual}",
                )
            )
    return finding


# --------------------------------------------------------------------------- checks


def command_problems(page: Page) -> Iterator[Problem]:
    shown_mistakes = set(re.findall(r"No such option: (--?[\w-]+)", "\n".join(page.raw)))
    for command in [*block_commands(page), *prose_commands(page)]:
        parsed = check_command(command.text, command.complete, command.strict_name)
        for message in parsed.problems:
            mistake = re.search(r"has no option (--?[\w-]+)", message)
            if mistake and mistake.group(1) in shown_mistakes:
                continue  # the docs show that mistake on purpose, with its error
            yield Problem(command.path, command.line, message)
        backends = parsed.backends
        for assignment in parsed.assignments:
            message = check_assignment(assignment, backends)
            if message:
                yield Problem(command.path, command.line, message)


def _options_of(command: click.Command) -> set[str]:
    """Every flag of a command and of its subcommands."""
    known: set[str] = {"--help", "-h"}
    stack = [command]
    while stack:
        current = stack.pop()
        known |= set(_option_lookup(current))
        if isinstance(current, click.Group):
            stack += list(current.commands.values())
    return known


def _mentioned_command(literal: str) -> str | None:
    """The daskdeploy command a literal names: ``daskdeploy X ...`` or ``X --flag``."""
    for _, text, _ in commands_in(literal):
        name = text.split(" ", 1)[0]
        if name in command_names():
            return name
    head = literal.split(" ", 1)
    if (
        len(head) == 2
        and head[0] in command_names()
        and head[0] not in AMBIGUOUS_SUBCOMMANDS
        and head[1].startswith("-")
    ):
        return head[0]
    return None


def flag_mention_problems(page: Page) -> Iterator[Problem]:
    """A ``--flag`` literal in prose is an option of the daskdeploy command named before it
    in the same sentence, or, with none named, of some daskdeploy command. A flag after
    another tool's name (srun, sbatch, mpiexec, ...) may be that tool's and is left out,
    and so are flags named without a command in paragraphs that name another tool."""
    cli = vocabulary().cli
    sbatch_flags = {f"--{name}" for name in _sbatch_tables()[0]}
    everything = _options_of(cli) | sbatch_flags
    pattern = r"`([^`]+)`" if page.markdown else r"``(.+?)``"
    other = "another tool"
    for paragraph in page.paragraphs:
        text = paragraph.text
        others_here = OTHER_TOOLS.search(re.sub(r"daskdeploy \w+", "", text)) is not None
        literals = [" ".join(m.group(1).split()) for m in re.finditer(pattern, text, re.S)]
        mentions_ours = any(_mentioned_command(literal) for literal in literals)
        current: str | None = None
        previous_end = 0
        for match in re.finditer(pattern, text, re.S):
            between = text[previous_end : match.start()]
            previous_end = match.end()
            if re.search(r"[.;:!?](\s|$)", between):
                current = None  # a new sentence
            if OTHER_TOOLS.search(re.sub(r"daskdeploy \w+", "", between)):
                current = other  # "... sbatch's ``--gres``"
            literal = " ".join(match.group(1).split())
            line = paragraph.line + text.count("\n", 0, match.start())
            named = _mentioned_command(literal)
            if named:
                current = named
                continue
            if OTHER_TOOLS.match(literal):
                current = other  # ``srun`` ... ``--mpi=pmi2``
                continue
            flag = re.match(r"^(--?[A-Za-z][\w-]*)", literal)
            if not flag or current == other:
                continue
            name = flag.group(1)
            if f"No such option: {name}" in text:
                continue  # the docs show that mistake on purpose
            if current is not None:
                command = cli.get_command(click.Context(cli), current)
                allowed = _options_of(command) if command is not None else everything
                if current == "sbatch":
                    allowed |= sbatch_flags  # passed on to the #SBATCH lines
                if name not in allowed:
                    yield Problem(
                        page.path,
                        line,
                        f"``{literal}`` follows ``daskdeploy {current}``, which has no "
                        f"option {name}",
                    )
            elif name not in everything and mentions_ours and not others_here:
                yield Problem(
                    page.path, line, f"``{literal}``: no daskdeploy command has an option {name}"
                )


def option_problems(page: Page) -> Iterator[Problem]:
    for block in page.blocks:
        if block.lang in ("python", "py", "pycon"):
            for offset, backend, keywords in deploy_calls("\n".join(block.lines)):
                fallback = context_backends(page, None, "\n".join(block.lines))
                for message in check_keywords(backend, keywords, fallback):
                    yield Problem(page.path, block.line + offset, message)
        if block.lang in ("yaml", "yml"):
            for offset, message in yaml_problems(block):
                yield Problem(page.path, block.line + offset, message)
        for offset, line in enumerate(block.lines):
            for message in config_key_problems(line):
                yield Problem(page.path, block.line + offset, message)
    for paragraph in page.paragraphs:
        for line, literal in page.literals(paragraph):
            if "deploy(" in literal and not literal.startswith("Unknown"):
                for _, backend, keywords in deploy_calls(literal):
                    fallback = context_backends(page, paragraph, paragraph.text)
                    for message in check_keywords(backend, keywords, fallback):
                        yield Problem(page.path, line, message)
            option = re.match(r"^(?:-o|--option)[ =](\S+=\S*)", literal)
            if option:
                backends = context_backends(page, paragraph, paragraph.text)
                message = check_assignment(option.group(1), backends)
                if message:
                    yield Problem(page.path, line, message)
            for message in config_key_problems(literal):
                yield Problem(page.path, line, message)
    yield from table_problems(page)


def _fail(problems: Iterable[Problem]) -> None:
    listed = sorted({str(p) for p in problems}, key=_natural)
    assert not listed, "\n" + "\n".join(listed)


def _natural(text: str) -> tuple[str, int, str]:
    path, _, rest = text.partition(":")
    number, _, message = rest.partition(":")
    return path, int(number) if number.isdigit() else 0, message


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return doc_pages()


def test_docs_commands_use_the_flags_their_command_has(pages):
    _fail(p for page in pages for p in [*command_problems(page), *flag_mention_problems(page)])


def test_docs_name_only_declared_backend_options(pages):
    _fail(p for page in pages for p in option_problems(page))


def test_docs_quote_the_codes_defaults(pages):
    problems, unparsed = [], []
    for page in pages:
        finding = defaults_in(page)
        problems += finding.problems
        unparsed += finding.unparsed
    if unparsed:
        warnings.warn(
            "defaults quoted in the docs that this test cannot read (check them by eye):\n"
            + "\n".join(sorted({str(p) for p in unparsed}, key=_natural)),
            stacklevel=1,
        )
    _fail(problems)


# --------------------------------------------------------------------------- self-test

SAMPLE = """\
Title
=====

.. code-block:: console

   $ daskdeploy run --workers 2 --dry-run script.py --not-ours
   $ daskdeploy run --wokers 2 script.py
   $ daskdeploy run --workers --dry-run script.py
   $ daskdeploy run --dry-run=yes script.py
   $ srun --ntasks-per-node 4 python script.py
   $ daskdeploy sbatch -N 2 --ntasks-per-node 4 --gres gpu:1 script.py > job.sbatch
   $ daskdeploy sbatch --ntask-per-node 4 script.py
   $ daskdeploy frobnicate
   $ daskdeploy run -o walltme=01:00:00 --backend slurm script.py
   $ daskdeploy run -o walltime=01:00:00 --backend slurm script.py
   $ daskdeploy profile save small --backend local --workers 2

Attach with ``run --attach NAME`` or ``daskdeploy run --atach NAME``; ``--dry-run``
prints. ``daskdeploy up`` takes ``--wrokers``.

Then ``sbatch -n 5`` and ``srun --pty`` are SLURM's, as is ``--exclusive``.

.. code-block:: python

   client = daskdeploy.deploy("slurm", workers=8, walltime="1:00:00", colour=3)
   client = daskdeploy.deploy(attach="x")

.. code-block:: yaml

   daskdeploy:
     local:
       workers: 2
       wrkers: 3
     profiles:
       p:
         backend: slurm
         partition: x
         queue: y
         bogus: 1

``timeout`` seconds (60 by default); ``threads_per_worker`` defaults to 3. TLS by
default. Export ``DASK_DASKDEPLOY__LOCAL__WORKRS=2`` or set ``daskdeploy.local.workers``.

.. code-block:: text

   Backend: local (cluster)
     timeout            = 60.0  (default)
     threads_per_worker = 2  (default)

With ``daskdeploy sbatch``, ``-t/--time`` (default ``02:00:00``) and ``--job-name``
(default: the script's name).
"""


def test_self_test_command_parser():
    parsed = check_command("jobscript --system sge -o walltime=1:00:00 script.py", True, True)
    assert parsed.problems == [] and parsed.assignments == ["walltime=1:00:00"]
    assert parsed.backends[0] == "sge"
    assert check_command("run script.py --wokers 2 input.csv", True, True).problems == []
    assert "needs a value" in check_command("up NAME --idle-timeout", True, True).problems[0]
    assert check_command("up NAME --idle-timeout", False, True).problems == []  # a mention
    assert check_command("profile save small --backend local", True, True).problems == []
    assert check_command("runn script.py", True, True).problems  # command position
    assert check_command("does the rest", False, False).problems == []  # prose
    problems = check_command("sbatch -n 2 --exclusive --gres=gpu:1 s.py", True, True).problems
    assert len(problems) == 1 and "write --ntasks" in problems[0], problems
    problems = check_command("sbatch --ntask-per-node 2 s.py", True, True).problems
    assert len(problems) == 1 and "--ntask-per-node" in problems[0], problems


def _sample() -> Page:
    return parse_rst("sample.rst", SAMPLE)


def _messages(problems: Iterable[Problem]) -> list[tuple[int, str]]:
    return sorted((p.line, p.message) for p in problems)


def test_self_test_commands():
    page = _sample()
    found = _messages([*command_problems(page), *flag_mention_problems(page)])
    lines = [line for line, _ in found]
    assert lines == [7, 8, 9, 12, 13, 14, 18, 19], found
    assert "has no option --wokers" in found[0][1]
    assert "needs a value, but is followed by --dry-run" in found[1][1]
    assert "takes no value" in found[2][1]
    assert "--ntask-per-node" in found[3][1]
    assert "no such command" in found[4][1]
    assert "'walltme'" in found[5][1]
    assert "--atach" in found[6][1]
    assert "--wrokers" in found[7][1] and "daskdeploy up" in found[7][1]


def test_self_test_options():
    found = _messages(option_problems(_sample()))
    assert [line for line, _ in found] == [25, 33, 39, 42], found
    assert "'colour'" in found[0][1]
    assert "'wrkers'" in found[1][1]
    assert "'bogus'" in found[2][1] and "slurm" in found[2][1]
    assert "WORKRS" in found[3][1]


def test_self_test_defaults():
    finding = defaults_in(_sample())
    found = _messages(finding.problems)
    assert [line for line, _ in found] == [41, 48, 50], found
    assert "--time defaults to '02:00:00'" in found[2][1]
    assert "threads_per_worker" in found[0][1] and "'3'" in found[0][1]
    assert "threads_per_worker = 2" in found[1][1]
    # "TLS by default" names no option; "(default: the script's name)" is prose
    assert [p.line for p in finding.unparsed] == [41, 51], finding.unparsed
