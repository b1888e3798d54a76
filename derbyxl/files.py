"""The returned files of a run: which files in the folders named are checked, their names
as reports show them, and their SHA-256."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable

#: What people's machines and mail leave in a returns folder, and other files that cannot be a
#: return by their name: skipped in a folder (and listed), unless their content is a workbook.
NOT_RETURNS = {"thumbs.db", "desktop.ini", "readme.md", "readme.txt"}
NOT_RETURN_SUFFIXES = {
    ".pdf", ".txt", ".md", ".eml", ".msg", ".doc", ".docx", ".rtf", ".odt", ".ppt", ".pptx", ".png", ".jpg",
    ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".htm", ".html", ".json", ".xml", ".log", ".ini", ".db", ".lnk",
    ".url", ".tmp", ".bak", ".zip", ".7z",
}  # fmt: skip


def expand_paths(paths: Iterable[str | Path], ignored: list[Path] | None = None) -> list[Path]:
    """Files named, and the files inside folders named (not recursing, skipping Excel's
    ``~$`` lock files and hidden files). In a folder, a file that cannot be a return by its
    name (Thumbs.db, desktop.ini, a PDF of the return, an email: :data:`NOT_RETURNS`,
    :data:`NOT_RETURN_SUFFIXES`) is skipped, and added to ``ignored`` when given, unless its
    content is a workbook after all; a file named on its own is always checked."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if not child.is_file() or child.name.startswith(("~$", ".")):
                    continue
                if _not_a_return(child):
                    if ignored is not None:
                        ignored.append(child)
                    continue
                out.append(child)
        else:
            out.append(p)
    return out


def _not_a_return(path: Path) -> bool:
    name = path.name.lower()
    if name not in NOT_RETURNS and path.suffix.lower() not in NOT_RETURN_SUFFIXES:
        return False
    # ... unless it is a workbook under another name: a zip holding a workbook part.
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"PK":
                return True
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist()[:2000])
        return not ("xl/workbook.xml" in names or "mimetype" in names and "content.xml" in names)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, EOFError):
        return True


def sha256_of(path: Path) -> str | None:
    """The SHA-256 of a file's bytes (None when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def display_names(files: list[Path]) -> list[str]:
    """File names, made unique with their folder when two folders hold the same name."""
    counts = Counter(f.name for f in files)
    return [f.name if counts[f.name] == 1 else f"{f.parent.name}/{f.name}" for f in files]
