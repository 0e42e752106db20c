"""The reader's on-ramp: objectives and takeaways in every chapter, notation links that
resolve, part introductions that list their chapters, numbered parts, no unseen sources."""

import re
from pathlib import Path

import pytest
import yaml

BOOK = Path(__file__).resolve().parents[2] / "book"
CHAPTERS = sorted(BOOK.glob("part*/*.md"))
TOC = yaml.safe_load((BOOK / "_toc.yml").read_text())
PARTS = [p for p in TOC["parts"] if p["caption"].startswith("Part ")]
FENCE = re.compile(r"^```\{admonition\}[^\n]*\n:class: (\w+)\n(.*?)^```$", re.M | re.S)


def labels(text: str) -> set[str]:
    return set(re.findall(r"^\(([\w-]+)\)=$", text, re.M))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: str(p.relative_to(BOOK)))
def test_chapter_opens_with_objectives_and_closes_with_takeaways(chapter):
    text = chapter.read_text()
    blocks = [(m.group(1), m.start(), m.end(), m.group(2)) for m in FENCE.finditer(text)]
    kinds = [kind for kind, *_ in blocks]
    assert kinds.count("objectives") == 1 and kinds.count("takeaways") == 1, kinds
    _, start, _, body = blocks[kinds.index("objectives")]
    title = re.search(r"^# .+$", text, re.M)
    assert text[title.end():start].strip() == "", "objectives must follow the title directly"
    assert len(re.findall(r"^- ", body, re.M)) >= 2, "objectives are a list of at least two"
    links = re.findall(r"\{ref\}`[^<`]*<([\w-]+)>`", body)
    notation = labels((BOOK / "notation.md").read_text())
    assert links and set(links) <= notation, f"notation links {links} must name its sections"
    _, _, end, body = blocks[kinds.index("takeaways")]
    assert text[end:].lstrip().startswith("## Exercises\n"), "takeaways come just before exercises"
    assert len(re.findall(r"^- ", body, re.M)) >= 1


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p["caption"].split(":")[0])
def test_each_part_is_numbered_and_opened_by_an_introduction_listing_its_chapters(part):
    assert part.get("numbered") is True
    files = [c["file"] for c in part["chapters"]]
    intro, chapters = files[0], files[1:]
    assert intro.startswith("overview/")
    listed = re.findall(r"\{doc\}`(?:[^<`]*<)?\.\./([\w/]+)>?`", (BOOK / f"{intro}.md").read_text())
    assert [c for c in listed if c in chapters] == chapters, "every chapter, in order"


def test_start_here_offers_the_reading_paths_and_links_the_background():
    text = (BOOK / "start_here.md").read_text()
    for path in ("Theory first", "Experiments first", "A course"):
        assert f"**{path}**" in text, path
    assert "{doc}`background`" in text
    background = (BOOK / "background.md").read_text()
    for section in ("background-gaussian", "background-meanfield", "background-flow"):
        assert section in labels(background)
    toc_files = {c["file"] for p in TOC["parts"] for c in p["chapters"]}
    for doc in re.findall(r"\{doc\}`(?:[^<`]*<)?([\w/]+)>?`", text):
        assert doc in toc_files, doc


def test_no_page_cites_a_source_that_readers_cannot_see():
    for page in BOOK.rglob("*.md"):
        if "_build" not in page.parts:
            assert not re.search(r"\bdigest\b", page.read_text(), re.I), page
