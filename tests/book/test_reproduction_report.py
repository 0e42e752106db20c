"""The reproduction report (book/reproduction.md) stays true to the book it summarizes."""

import re
from pathlib import Path

BOOK = Path(__file__).resolve().parents[2] / "book"
REPORT = BOOK / "reproduction.md"
STATUSES = {"reproduced", "reproduced with differences", "not reproduced", "not testable",
            "not yet tested"}
ROW = re.compile(r"^\| (I{1,3})\.(\d+) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$", re.MULTILINE)
TALLY = re.compile(r"^\| ([a-z ]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", re.MULTILINE)
# {numref}`fig-label`, or {ref}`text <tab-label>` (a figure or a table of printed results)
EVIDENCE = re.compile(r"\{numref\}`(fig-[\w-]+)`|\{ref\}`[^`<]*<((?:fig|tab)-[\w-]+)>`")


def defined_labels() -> set[str]:
    labels = set()
    for source in BOOK.rglob("*.md"):
        if "_build" in source.parts:
            continue
        text = source.read_text()
        labels |= set(re.findall(r"^\(([\w-]+)\)=$", text, re.MULTILINE))
        labels |= set(re.findall(r"^:(?:label|name): ([\w-]+)$", text, re.MULTILINE))
        # figures: the name in a code cell's ``mystnb: figure:`` metadata
        labels |= set(re.findall(r"^    name: (fig-[\w-]+)$", text, re.MULTILINE))
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


def test_every_claim_links_to_a_figure_or_table_that_exists():
    labels = defined_labels()
    for part, n, *_rest, where in rows():
        evidence = [a or b for a, b in EVIDENCE.findall(where)]
        assert evidence, f"{part}.{n} links to no figure or table"
        missing = [label for label in evidence if label not in labels]
        assert missing == [], f"{part}.{n} links to missing figures or tables {missing}"


def test_the_tally_counts_the_rows():
    counts = {}
    for part, _n, _claim, _result, status, _where in rows():
        counts.setdefault(status, {"I": 0, "II": 0, "III": 0})[part] += 1
    tally = {status: tuple(map(int, numbers)) for status, *numbers in
             TALLY.findall(REPORT.read_text())}
    assert set(tally) == STATUSES | {"all claims"}
    for status in STATUSES:
        per_part = counts.get(status, {"I": 0, "II": 0, "III": 0})
        expected = (per_part["I"], per_part["II"], per_part["III"], sum(per_part.values()))
        assert tally[status] == expected, f"tally of {status!r}"
    assert tally["all claims"] == tuple(sum(col) for col in zip(
        *(tally[s] for s in STATUSES), strict=True))
