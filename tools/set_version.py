"""Set the version of the library and the book from a release tag.

``python tools/set_version.py v1.2.0`` writes 1.2.0 into the one place the package reads it
(``__version__`` in ``lib/tdyn/__init__.py``, which ``pyproject.toml`` takes as its dynamic
version), into ``CITATION.cff`` (with ``date-released``) and into the BibTeX of
``book/cite.md``.  The release workflow runs it on a tag ``v<version>`` before it builds, so
the tag sets every version number; a tag that is not ``v`` plus a PEP 440 version is refused.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = re.compile(r"^v(?P<version>\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?)$")

# (file, pattern of the line that holds the version, its replacement with {version})
TARGETS = (
    ("lib/tdyn/__init__.py", r'^__version__ = "[^"]*"$', '__version__ = "{version}"'),
    ("CITATION.cff", r'^version: "[^"]*"$', 'version: "{version}"'),
    ("book/cite.md", r"^  version = \{[^}]*\},$", "  version = {{{version}}},"),
)


def version_of_tag(tag: str) -> str:
    """``v1.2.0`` -> ``1.2.0``; ValueError for anything else."""
    match = TAG.match(tag)
    if match is None:
        raise ValueError(f"tag {tag!r} is not v<version> (for example v1.2.0)")
    return match["version"]


def set_version(tag: str, root: Path = ROOT, today: str | None = None) -> str:
    """Write the version of ``tag`` into every file of :data:`TARGETS` under ``root`` (and the
    release date into CITATION.cff); returns the version.  Each file must hold exactly one
    version line, so a changed layout fails loudly instead of being skipped."""
    version = version_of_tag(tag)
    for name, pattern, replacement in TARGETS:
        path = root / name
        text, count = re.subn(pattern, replacement.format(version=version), path.read_text(),
                              flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"{path} holds {count} version lines matching {pattern!r}, not 1")
        if name == "CITATION.cff":
            date = today or datetime.now(UTC).date().isoformat()
            text, dated = re.subn(r"^date-released: .*$", f'date-released: "{date}"', text,
                                  flags=re.MULTILINE)
            if not dated:
                text = text.replace(f'version: "{version}"\n',
                                    f'version: "{version}"\ndate-released: "{date}"\n')
        path.write_text(text)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag", help="the release tag, v<version>")
    args = parser.parse_args(argv)
    try:
        version = set_version(args.tag)
    except ValueError as error:
        print(f"set_version: {error}", file=sys.stderr)
        return 2
    print(f"version {version} written to {', '.join(name for name, _, _ in TARGETS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
