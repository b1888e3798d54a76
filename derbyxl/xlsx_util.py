"""Small helpers shared by every workbook derbyxl writes."""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import xlsxwriter
import xlsxwriter.worksheet

from derbyxl.spec import MAX_TEXT

#: Leading characters that make Excel or LibreOffice treat typed text as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    return isinstance(text, str) and text.startswith(FORMULA_TRIGGERS)


#: Functions of Excel 2007 that xlsxwriter never rewrites (it prefixes newer ones with _xlfn.).
#: tests/test_template.py checks each against xlsxwriter.
PLAIN_FUNCTIONS = frozenset(
    "ABS AND AVERAGE COUNT COUNTA COUNTIF IF IFERROR INDEX ISBLANK ISERROR ISNUMBER ISTEXT LEFT LEN MATCH MAX MIN MOD NOT OR RIGHT ROUND SEARCH SUM TRIM".split()
)
_CALLED = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?=\()")


class Worksheet(xlsxwriter.worksheet.Worksheet):
    """xlsxwriter's worksheet, without its regular-expression passes over a formula that
    calls only :data:`PLAIN_FUNCTIONS` (or none): 29 passes over each cell formula, and some
    150 over each conditional format's, looking for newer functions to prefix. The status
    preview formulas of a return call IF, AND, ISNUMBER, ABS, NOT and ROUND; the conditional
    formats compare a cell with a word, or SEARCH for one.

    It overrides xlsxwriter's private ``_prepare_formula``, kept for a wide measured margin:
    a 199-item template is written in 30.8 ms with it and 45.2 ms without (100 templates of
    the benchmark's register, 2026-12-01), and the demo's master in 0.07 s rather than 0.11
    s, with the sparkline styles below (bench/README.md, eleventh session). A change in
    xlsxwriter that renames the method makes every formula go through the library's own
    path again."""

    def _prepare_formula(self, formula, expand_future_functions=False):
        plain = formula.removeprefix("{").removeprefix("=").removesuffix("}")
        if PLAIN_FUNCTIONS.issuperset(_CALLED.findall(plain)):
            return plain
        return super()._prepare_formula(formula, expand_future_functions)


class Workbook(xlsxwriter.Workbook):
    """The workbook every derbyxl workbook is written with: xlsxwriter's, whose sheets are
    the :class:`Worksheet` above (xlsxwriter's documented way to extend its worksheets)."""

    worksheet_class = Worksheet


def _cache_sparkline_styles() -> None:
    """xlsxwriter (3.3) builds its table of 36 sparkline styles, some 250 colour objects, for
    every sparkline it is given, to read one: 328 microseconds a sparkline rather than 13
    with the table built once (2,000 sparklines timed), 31 ms of the demo's master (94
    measures on its Trends sheet), 0.7 s for a council with 2,000. The table never changes,
    so it is built once per style asked for. The styles are only read (the sparkline takes
    their colours), so one table serves every sparkline; a release that renames the function
    is left as it is."""
    build = getattr(xlsxwriter.worksheet, "_get_sparkline_style", None)
    if callable(build) and not hasattr(build, "cache_info"):
        xlsxwriter.worksheet._get_sparkline_style = functools.lru_cache(maxsize=None)(build)


_cache_sparkline_styles()


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
