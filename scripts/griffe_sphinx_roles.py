"""Griffe extension for the docs site: Sphinx roles in docstrings become Markdown code.

The docstrings were written with Sphinx roles (:class:`Chat`, :meth:`respond`), which
mkdocstrings renders literally. Rewriting them at build time keeps the docstrings readable in
``help()`` and editors while the site shows ``Chat`` as code. Used from mkdocs.yml
(``extensions:``); a test checks that the built site has no role left.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :class:`X`, :meth:`~pkg.X.y`, :data:`._module.NAME`, ... (the roles Sphinx's Python domain has)
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|mod|data|obj|const):`([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    target = match.group(1)
    if target.startswith("~"):  # Sphinx: show only the last component
        target = target.rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def rewrite(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span of its target."""
    return _ROLE.sub(_plain, text)


class SphinxRolesToMarkdown(griffe.Extension):
    """Rewrites each object's docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
