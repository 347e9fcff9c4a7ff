"""Sphinx configuration for fastgd's documentation.

Build from the repository root with the installed package (``pip install '.[docs]'``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

autodoc imports the installed ``fastgd`` (its compiled modules included), so the build
documents exactly what ``pip install .`` gives. Nothing is fetched from the network.
"""
import fastgd

project = "fastgd"
author = "fastgd developers"
copyright = "2026, fastgd developers"
release = fastgd.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    # Markdown pages (scaling.md), with $...$ and $$...$$ mathematics
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath"]

templates_path = ["_templates"]
exclude_patterns = ["_build", "figures/README*"]
root_doc = "index"
# `name` in a docstring links to the object of that name when there is one (as numpy does)
default_role = "py:obj"

# the API pages are generated from the docstrings at build time (docs/api/generated/)
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
# signatures show defaults as written (``dtype=np.float32``, not ``<class 'numpy.float32'>``)
autodoc_preserve_defaults = True

# numpydoc renders the Parameters/Returns/... sections; members are listed by autodoc
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# the build needs no network: alabaster ships with Sphinx, and MathJax is loaded by the
# reader's browser when a page with mathematics is opened
html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "Fast, clear gradient descent",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}


def _public_bases(app, name, obj, options, bases):
    """Show a class's public ancestors: a private base (``_Loss``) is replaced by its own
    first public base (``object`` for ``_Loss``)."""
    shown = []
    for base in bases:
        while base.__name__.startswith("_") and base.__bases__:
            base = base.__bases__[0]
        if base not in shown:
            shown.append(base)
    bases[:] = shown


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Members a class inherits from another library (``fastgd.torch``'s from
    ``torch.optim.Optimizer``) are that library's to document: skipped."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and module.split(".")[0] not in ("fastgd", ""):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-skip-member", _skip_foreign_members)
