"""The documentation matches the code: public names documented, commands as in README.

The Sphinx build itself (warnings as errors) runs in ``nox -s docs``; the tutorial's
commands run in tests/test_tutorial.py and the error messages are checked in
tests/test_docs_errors.py.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import click
import pytest

import daskdeploy
from conftest import REPO

DOCS = REPO / "docs"
BACKEND_PAGES = {
    "local": "local.rst",
    "slurm": "slurm.rst",
    "allocation": "allocation.rst",
    "ssh": "ssh.rst",
    "mpi": "mpi.rst",
    "batchjob": "batchjob.rst",
    **dict.fromkeys(("sge", "pbs", "lsf", "htcondor", "oar", "moab"), "batch-systems.rst"),
}


def _public_objects():
    """(qualified name, object) for every public class, function and method."""
    for info in pkgutil.walk_packages(daskdeploy.__path__, "daskdeploy."):
        module = importlib.import_module(info.name)
        yield info.name, module
        names = getattr(module, "__all__", None)
        if names is None:
            names = [
                name
                for name, value in vars(module).items()
                if not name.startswith("_")
                and getattr(value, "__module__", None) == info.name
                and (inspect.isclass(value) or inspect.isfunction(value))
            ]
        for name in names:
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            yield f"{info.name}.{name}", value
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if attribute.startswith("_"):
                        continue
                    function = member.fget if isinstance(member, property) else member
                    function = getattr(function, "__func__", function)
                    if inspect.isfunction(function):
                        yield f"{info.name}.{name}.{attribute}", function


def test_every_public_module_class_function_and_method_has_a_docstring():
    undocumented = [name for name, value in _public_objects() if not inspect.getdoc(value)]
    assert not undocumented, "add numpydoc docstrings to: " + ", ".join(undocumented)


def test_every_top_level_name_is_in_the_api_reference():
    api = (DOCS / "api.rst").read_text()
    public = [name for name in daskdeploy.__all__ if not name.startswith("_")]
    missing = [name for name in public if f":: daskdeploy.{name}" not in api]
    assert not missing, f"add to docs/api.rst: {missing}"


def _commands(group: click.Group, prefix: str = "daskdeploy"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_every_cli_command_and_option_has_help():
    from daskdeploy.cli import cli

    problems = []
    for name, command in _commands(cli):
        if not (command.help or "").strip():
            problems.append(f"{name}: no help text")
        for parameter in command.params:
            if isinstance(parameter, click.Option) and not (parameter.help or "").strip():
                problems.append(f"{name} {parameter.opts[0]}: no help text")
    assert not problems, problems


def _readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    run_main_job, run_tests = commands
    assert "daskdeploy run examples/pi.py" in run_main_job
    assert "nox -s tests" in run_tests
    assert run_tests in (REPO / ".ci" / "run").read_text().splitlines()


def test_getting_started_shows_the_readme_commands_verbatim():
    page = (DOCS / "getting-started.rst").read_text()
    for command in _readme_commands():
        assert f"   {command}\n" in page, command


@pytest.mark.parametrize("backend", sorted(BACKEND_PAGES))
def test_each_backend_page_covers_what_users_need(backend):
    page = (DOCS / BACKEND_PAGES[backend]).read_text()
    headings = {
        lines[i].strip()
        for lines in [page.splitlines()]
        for i in range(len(lines) - 1)
        if re.fullmatch(r"([-=~^])\1{3,}", lines[i + 1].strip())
    }
    assert f".. daskdeploy-options:: {backend}" in page, "generated options table"
    for needed in ("When to use it", "Troubleshooting"):
        assert any(heading.startswith(needed) for heading in headings), (needed, headings)
    assert any("Security" in heading for heading in headings), headings
    assert any("Clean-up" in heading or "clean-up" in heading for heading in headings), headings


def test_every_backend_has_a_page_in_the_toctree():
    from daskdeploy.registry import backend_names

    index = (DOCS / "index.rst").read_text()
    for backend in backend_names():
        assert backend in BACKEND_PAGES, f"{backend}: no docs page"
        assert f"   {BACKEND_PAGES[backend].removesuffix('.rst')}\n" in index


#: The toctrees of docs/index.rst whose pages are user pages (not How it works or Reference).
USER_SECTIONS = ("Start here", "Where to run", "Topics")
#: The user pages' word budget in all (``wc -w``): what to type, what happens, what to do
#: when it fails; mechanics belong in how-it-works/, details in the reference.
USER_PAGES_WORD_LIMIT = 25_000


def toctree_pages(index_text: str) -> dict[str, list[str]]:
    """The pages of each captioned toctree in ``index_text``: {caption: [page, ...]}."""
    sections: dict[str, list[str]] = {}
    for block in re.split(r"^\.\. toctree::\s*$", index_text, flags=re.M)[1:]:
        caption, pages = None, []
        for line in block.splitlines()[1:]:
            if line.strip() and not line.startswith("   "):
                break
            option = re.fullmatch(r"\s+:caption:\s*(.+)", line)
            if option:
                caption = option[1].strip()
            elif line.strip() and not line.strip().startswith(":"):
                pages.append(line.strip())
        sections[caption] = pages
    return sections


def test_toctree_pages_reads_captions_and_pages():
    text = ".. toctree::\n   :maxdepth: 1\n   :caption: A b\n\n   one\n   two\n\nText\n"
    assert toctree_pages(text) == {"A b": ["one", "two"]}


def test_user_pages_stay_within_the_word_budget():
    sections = toctree_pages((DOCS / "index.rst").read_text())
    assert set(USER_SECTIONS) <= set(sections), sorted(sections, key=str)
    counts = {
        page: len((DOCS / f"{page}.rst").read_text().split())
        for section in USER_SECTIONS
        for page in sections[section]
    }
    total = sum(counts.values())
    largest = ", ".join(f"{p} {n}" for p, n in sorted(counts.items(), key=lambda x: -x[1])[:5])
    assert total <= USER_PAGES_WORD_LIMIT, (
        f"the user pages have {total} words, over {USER_PAGES_WORD_LIMIT}: move mechanics to "
        f"how-it-works/ and details to the reference (largest: {largest})"
    )


def _common_options_named(text: str) -> list[str]:
    """The option names in the sentence of ``text`` that starts "Every backend accepts"."""
    start = text.index("Every backend accepts")
    sentence = re.split(r";| plus |\n\n", text[start:], maxsplit=1)[0]
    return re.findall(r"`+(\w+)`+", sentence)


def test_the_common_option_lists_are_the_code_s():
    from daskdeploy.options import COMMON_OPTIONS

    names = [option.name for option in COMMON_OPTIONS]
    sources = {
        "README.md": (REPO / "README.md").read_text(),
        "docs/api.rst": (DOCS / "api.rst").read_text(),
        "deploy() docstring": inspect.getdoc(daskdeploy.deploy),
    }
    for where, text in sources.items():
        assert _common_options_named(text) == names, where
