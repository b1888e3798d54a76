"""Small helpers shared by every workbook derbyxl writes."""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from derbyxl.spec import MAX_TEXT

#: Leading characters that make Excel or LibreOffice treat typed text as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    return isinstance(text, str) and text.startswith(FORMULA_TRIGGERS)


def write_text(ws, row: int, col: int, text, fmt=None):
    """Write a value as plain text with xlsxwriter, never as a formula, number or URL.

    ``worksheet.write()`` would turn ``=HYPERLINK(...)`` into a live formula and ``http://`` into
    a link; ``write_string`` stores the characters as they are, which is what untrusted text
    (commentary from returns) must get.
    """
    if text is None or text == "":
        return ws.write_blank(row, col, None, fmt)
    return ws.write_string(row, col, str(text)[:MAX_TEXT], fmt)


def write_number(ws, row: int, col: int, value, fmt=None):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ws.write_blank(row, col, None, fmt)
    return ws.write_number(row, col, float(value), fmt)


def row_height(texts_and_widths, base: float = 15.0, cap: int = 12) -> float | None:
    """An estimate of the height a row of wrapped text needs, or ``None`` for the default.

    Excel does not measure wrapped text when a file is opened by another program, and LibreOffice
    prints what the file says, so the writer sets heights itself.
    """
    lines = 1
    for text, width in texts_and_widths:
        if not text:
            continue
        per_line = max(1, int(width * 1.15))
        n = sum(max(1, math.ceil(len(part) / per_line)) for part in str(text).split("\n"))
        lines = max(lines, n)
    lines = min(lines, cap)
    return None if lines == 1 else base * lines


class NotReplaced(OSError):
    """The finished file could not take the place of what is at its name: on Windows, a file
    open in Excel; anywhere, a folder of that name. What was there is untouched."""


class OutputNotWritable(OSError):
    """A folder or file derbyxl was asked to write to cannot be created or written: a problem
    of the environment, not of the data (the command line exits 2 naming the path)."""

    def __init__(self, path, why: str):
        super().__init__(f"{path}: {why}")
        self.path = Path(path)
        self.why = why

    def __str__(self) -> str:
        return f"cannot write to {self.path} ({self.why}); choose a folder you can write to, or ask for access"


def ensure_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) if need be and check it can be written.

    Raises:
        OutputNotWritable: naming the folder, when it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputNotWritable(folder, "a file stands at that name, not a folder") from exc
    except OSError as exc:
        raise OutputNotWritable(folder, exc.strerror or str(exc)) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritable(folder, "the folder cannot be written")
    return folder


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux), which
    is safe with threads; elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode an ordinary new file gets here (0o666 less the umask): what ``open()`` gives,
    and what derbyxl's atomically written files must get too (a temporary file is made 0o600)."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    The rename is atomic on one file system, so a reader (or a crash) sees either the old file
    or the new one, never half of one. On failure the temporary file is removed. The file gets
    the permissions any new file gets (the umask), not the temporary file's 0o600.

    Raises:
        NotReplaced: when the rename fails (what the block raises passes through as it is).
        OutputNotWritable: when the folder cannot be created or written.
    """
    target = Path(target)
    ensure_folder(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.part-", suffix=target.suffix, dir=target.parent)
    except OSError as exc:
        raise OutputNotWritable(target.parent, exc.strerror or str(exc)) from exc
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise NotReplaced(exc.errno, exc.strerror, str(target)) from exc
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
