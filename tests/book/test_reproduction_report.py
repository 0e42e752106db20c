"""The reproduction report (book/reproduction.md) stays true to the book it summarizes."""

import re
from pathlib import Path

BOOK = Path(__file__).resolve().parents[2] / "book"
REPORT = BOOK / "reproduction.md"
STATUSES = {"reproduced", "reproduced with differences", "not reproduced", "not testable",
            "not yet tested"}
ROW = re.compile(r"^\| (I{1,3})\.(\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", re.MULTILINE)


def defined_labels() -> set[str]:
    labels = set()
    for source in BOOK.rglob("*.md"):
        if "_build" in source.parts:
            continue
        text = source.read_text()
        labels |= set(re.findall(r"^\(([\w-]+)\)=$", text, re.MULTILINE))
        labels |= set(re.findall(r"^:(?:label|name): ([\w-]+)$", text, re.MULTILINE))
    return labels


def rows():
    return ROW.findall(REPORT.read_text())


def test_every_part_has_claims_and_no_placeholder_is_left():
    parts = {part for part, *_ in rows()}
    assert parts == {"I", "II", "III"}
    assert not re.search(r"PART\d-\w+|TODO|XXX", REPORT.read_text())


def test_claim_numbers_are_unique_and_statuses_known():
    numbers = [(part, int(n)) for part, n, *_ in rows()]
    assert len(numbers) == len(set(numbers))
    for part, n, _claim, result, status, _where in rows():
        assert status in STATUSES, f"{part}.{n}: unknown status {status!r}"
        assert result.strip(), f"{part}.{n}: no figure or number"


def test_every_claim_links_to_a_chapter_section_that_exists():
    labels = defined_labels()
    for part, n, *_rest, where in rows():
        # {ref}`label` or {ref}`Link text <label>`
        targets = re.findall(r"\{ref\}`(?:[^`<]*<)?([\w-]+)>?`", where)
        assert targets, f"{part}.{n} links to no chapter"
        missing = [t for t in targets if t not in labels]
        assert missing == [], f"{part}.{n} links to missing sections {missing}"
