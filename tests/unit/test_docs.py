"""The documents stay in the repository: every link resolves to a file (and heading) here; the README is short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 15_000
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def documents() -> list[Path]:
    """README.md, docs/**/*.md, connectors/*/README.md, bench/README.md and deploy/README.md."""
    found = [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "deploy" / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    found += sorted((ROOT / "connectors").glob("*/README.md"))
    return found


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^a-z0-9 -]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def links(path: Path) -> list[str]:
    """The link targets of a Markdown file, code spans and blocks left out."""
    return _LINK.findall(_CODE.sub("", path.read_text()))


def broken_links(path: Path) -> list[str]:
    """Each link of `path` that leaves the repository, names a missing file, or a missing heading."""
    problems = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            problems.append(f"{target}: links outside the repository")
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_links_outside_the_repository_or_to_a_missing_file(path: Path) -> None:
    """Every link is relative, stays in the repository and resolves (anchors included); no outside notes are named."""
    assert broken_links(path) == []
    text = path.read_text()
    for outside in ("../shared", "shared/vendors", "DESIGN.md", "STYLE.md"):
        assert outside not in text, f"{path.relative_to(ROOT)} names {outside}, which a user does not have"


def test_the_link_check_finds_what_it_should() -> None:
    """The checker is not vacuous: an outside link, a URL, a missing file and a missing heading are each caught."""
    doc = ROOT / "docs" / "__probe__.md"
    doc.write_text(
        "[a](../../shared/vendors/unibo.md) [b](https://example.com) [c](missing.md) [d](operations.md#no-such) "
        "[ok](operations.md#alerts) `[code](nowhere.md)`\n"
    )
    try:
        problems = broken_links(doc)
    finally:
        doc.unlink()
    assert [problem.split(":")[0] for problem in problems] == [
        "../../shared/vendors/unibo.md",
        "https",
        "missing.md",
        "operations.md#no-such",
    ]


def test_readme_stays_short() -> None:
    """README.md is at most 15,000 bytes: the pitch, the quick start, the commands and links; the rest is in docs/."""
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move reference material to docs/"


def test_every_doc_page_is_reachable_from_the_readme() -> None:
    """Each page under docs/ is linked from the README or from a page the README links (directly or not)."""
    reachable: set[Path] = set()
    queue = [ROOT / "README.md"]
    while queue:
        page = queue.pop()
        if page in reachable or page.suffix != ".md" or not page.exists():
            continue
        reachable.add(page)
        queue += [(page.parent / t.partition("#")[0]).resolve() for t in links(page) if t.partition("#")[0]]
    missing = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md") if p not in reachable)
    assert missing == []
