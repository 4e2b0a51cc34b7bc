"""The documentation site's guide stays true to the README it shares sections with."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def section(text: str, heading: str) -> str:
    """The body under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    body = text.split(heading + "\n", 1)[1]
    lines = []
    for line in body.splitlines():
        if line.startswith("#") and line.split(" ", 1)[0] in {"#", level[:-1], level}:
            break
        lines.append(line)
    return "\n".join(lines).strip()


@pytest.mark.parametrize(
    ("page", "readme_heading"),
    [
        ("guide/guarantees.md", "## Guarantees"),
        ("guide/typescript.md", "### Coming from the TypeScript SDK"),
    ],
)
def test_a_guide_page_shared_with_the_readme_says_the_same(page: str, readme_heading: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    doc = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert section(doc, "# " + readme_heading.lstrip("# ")) == section(readme, readme_heading)


def test_every_guide_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").rglob("*.md")):
        assert str(page.relative_to(ROOT / "docs")) in nav, page
