"""Code generation: planned IR -> a readable TTNN module (render.py, the jinja2 templates beside it)."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_TEMPLATES = ("module.py.j2", "resample.py.j2")


@cache
def module_helpers() -> frozenset[str]:
    """The functions and methods every generated module defines around its layers (as the templates
    spell them, without `__init__` and `forward`): a ttnn call inside one belongs to its caller's layer."""
    names: set[str] = set()
    for template in _TEMPLATES:
        names.update(re.findall(r"^\s*def (\w+)\(", files("templates").joinpath(template).read_text(), re.M))
    return frozenset(names - {"__init__", "forward"})
