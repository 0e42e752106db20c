"""``make dist``: the release archive in ``dist/``: the built HTML as
``tdyn-book-<version>-html.tar.gz``, the data manifest ``MANIFEST.json`` (the SHA-256 of every
committed result) and ``SHA256SUMS`` over both (check with ``sha256sum -c SHA256SUMS``)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
import tarfile
from pathlib import Path

from tdyn import __version__

ROOT = Path(__file__).resolve().parent.parent


def write_dist(html: Path, manifest: Path, out: Path) -> list[Path]:
    """Write the archive, the manifest and ``SHA256SUMS`` to ``out``; returns the files."""
    if not (html / "index.html").is_file():
        raise SystemExit(f"make dist: {html} holds no built book (run make book first)")
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"tdyn-book-{__version__}-html.tar.gz"
    # Reproducible: the same book gives the same bytes (sorted entries, no times or owners).
    def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                   filename="") as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(html.rglob("*")):
            tar.add(path, arcname=f"tdyn-book/{path.relative_to(html).as_posix()}",
                    recursive=False, filter=normalized)
    shutil.copyfile(manifest, out / "MANIFEST.json")
    files = [archive, out / "MANIFEST.json"]
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in files)
    (out / "SHA256SUMS").write_text(sums)
    return [*files, out / "SHA256SUMS"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "book" / "_build" / "html")
    parser.add_argument("--manifest", type=Path, default=ROOT / "data" / "MANIFEST.json")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    for path in write_dist(args.html, args.manifest, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
