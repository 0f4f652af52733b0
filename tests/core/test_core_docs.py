"""The README is a short front door, and every link of the README, CONTRIBUTING.md and the manual
(docs/) resolves, anchors included, as GitHub renders them; mkdocs.yml's nav lists every page.

`mkdocs build --strict` (in .ci/run) checks the same links for the site; this test needs no MkDocs
and checks the anchors with GitHub's rules, so the pages also read on GitHub.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 400
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")


def manual_pages() -> list[Path]:
    """The manual's pages; drafts of branches in progress (docs/pending-*.md) are not published."""
    return sorted(page for page in DOCS.glob("*.md") if not page.name.startswith("pending-"))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces → -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = github_slug(match.group(1))
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    return LINK.findall(text)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto: — outside the repository
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


def test_github_slugs_follow_githubs_rules():
    assert github_slug("Retention: `cxctl db prune`") == "retention-cxctl-db-prune"
    assert (
        github_slug("`cxctl forget CONTACT|EMAIL` — right to erasure") == "cxctl-forget-contactemail--right-to-erasure"
    )
    assert github_slug("Merging, duplicates, re-imports") == "merging-duplicates-re-imports"


def test_the_readme_is_a_front_door_under_400_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines: move the detail to a page under docs/"


def test_every_link_resolves():
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *manual_pages()]
    broken = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in pages}
    assert {page: found for page, found in broken.items() if found} == {}


def test_the_readme_links_every_page_of_the_manual():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert [page.name for page in manual_pages() if page.resolve() not in linked] == []


def test_the_site_nav_lists_every_page():
    def nav_files(entries):
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                yield from nav_files(value) if isinstance(value, list) else [value]

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = set(nav_files(config["nav"]))
    assert sorted(page.name for page in manual_pages() if page.name not in listed) == []
    assert sorted(name for name in listed if not (DOCS / name).is_file()) == []


POINTER = re.compile(r'docs/([\w.-]+\.md)(?:,\s*"([^"]+)"|\s*\(\s*"?([^)"]+?)"?\s*\))?')


def test_the_code_points_into_the_manual_and_every_pointer_resolves():
    """Messages and comments name a page and a heading of docs/ (the README no longer holds sections)."""
    problems = []
    for source in sorted((ROOT / "cxctl").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        where = source.relative_to(ROOT).as_posix()
        if "README" in text:
            problems.append(f"{where}: points to the README: name the page of docs/ instead")
        for page, quoted, parenthesised in POINTER.findall(text):
            heading = quoted or parenthesised
            if not (DOCS / page).is_file():
                problems.append(f"{where}: docs/{page}: no such page")
            elif heading and github_slug(heading) not in anchors(DOCS / page):
                problems.append(f"{where}: docs/{page} has no heading {heading!r}")
    assert problems == []
