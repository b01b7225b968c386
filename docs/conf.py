"""Sphinx configuration for the carto_proxy documentation (MyST markdown, furo theme)."""

from __future__ import annotations

from carto_proxy import __version__

project = "carto-proxy"
author = "carto_proxy developers"
copyright = "carto_proxy developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
# No intersphinx: the docs build offline, with only the core package installed.

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Heading anchors make `page.md#some-heading` links work between pages.
myst_heading_anchors = 3

nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attribute types would name private modules (carto_proxy._routing.Action); the class
# signature already shows them in short form.
napoleon_attr_annotations = False

html_theme = "furo"
html_title = f"carto-proxy {release}"
