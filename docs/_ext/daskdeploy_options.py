"""Sphinx directive ``.. daskdeploy-options:: BACKEND``: the backend's options table.

The table is generated from the backend's :class:`~daskdeploy.options.Option`
declarations and the packaged defaults (``daskdeploy.yaml``), the same sources that
``deploy()`` and ``daskdeploy backends --options`` use, so the documented options and
defaults cannot drift from the code. Options the backend shares with every other
backend are marked *(common)*; ``:own:`` lists only the backend's own options, and
``.. daskdeploy-options:: common`` the shared ones with their shared defaults.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _default_text(value: Any) -> str:
    """The default as a user writes it in YAML (``null``, ``true``, ``[]``, ``00:30:00``)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _literal_cell(text: str) -> nodes.entry:
    return nodes.entry("", nodes.paragraph("", "", nodes.literal(text, text)))


def _text_cell(directive: SphinxDirective, text: str) -> nodes.entry:
    entry = nodes.entry()
    paragraph, messages = directive.state.inline_text(text, directive.lineno)
    entry += nodes.paragraph("", "", *paragraph)
    entry += messages
    return entry


class BackendOptionsDirective(SphinxDirective):
    """Render a table of a backend's options: name, packaged default and help text."""

    required_arguments = 1
    option_spec = {"own": directives.flag}

    def run(self) -> list[nodes.Node]:
        from daskdeploy import config
        from daskdeploy.options import COMMON_OPTIONS
        from daskdeploy.registry import get_backend

        name = self.arguments[0]
        common = {option.name for option in COMMON_OPTIONS}
        if name == "common":  # the options every backend shares, with their shared defaults
            defaults, options = config.common_defaults(), COMMON_OPTIONS
            common = set()
        else:
            backend = get_backend(name)
            defaults = config.backend_defaults(name)
            options = backend.extra_options if "own" in self.options else backend.options()

        table = nodes.table(classes=["daskdeploy-options"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (22, 16, 62):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        header = nodes.row()
        for title in ("Option", "Default", "Meaning"):
            header += nodes.entry("", nodes.paragraph(text=title))
        head += header
        body = nodes.tbody()
        group += body
        for option in options:
            row = nodes.row()
            label = option.name
            row += _literal_cell(label)
            row += _literal_cell(_default_text(defaults.get(option.name)))
            # Help texts quote names with single backticks (plain text for --help);
            # as rst those would be italics, not code.
            meaning = re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", option.help)
            if option.aliases:
                meaning += " Also accepted as " + ", ".join(f"``{a}``" for a in option.aliases)
                meaning += "."
            if option.name in common and "own" not in self.options:
                meaning += " *(common)*"
            row += _text_cell(self, meaning)
            body += row
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("daskdeploy-options", BackendOptionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
