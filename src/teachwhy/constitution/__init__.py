"""Parse a Markdown constitution (model spec) into principles with stable ids.

The parsing rules, the id rule and the explicit ``{#id}`` syntax are documented in
:mod:`teachwhy.constitution.parser`.
"""

from teachwhy.constitution.model import Constitution, Principle
from teachwhy.constitution.parser import example_constitution_path, load_constitution, parse_constitution

__all__ = [
    "Constitution",
    "Principle",
    "example_constitution_path",
    "load_constitution",
    "parse_constitution",
]
