"""Sphinx configuration for the daskdeploy documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The build needs no network: there is no intersphinx.
"""

import sys
from pathlib import Path

import daskdeploy

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "daskdeploy"
author = "daskdeploy developers"
copyright = "daskdeploy developers"
release = daskdeploy.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "daskdeploy_options",
]

exclude_patterns = ["_build"]

html_theme = "furo"
html_title = f"daskdeploy {release}"

# Docstrings are numpydoc style.
napoleon_google_docstring = False
napoleon_numpy_docstring = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
