"""The register: every item the council monitors this year.

A performance officer keeps it by hand as an ``.xlsx`` (sheet ``Register``) or ``.csv``.
Headers are matched ignoring case and spacing. Columns:

=================  ========  ==============================================================
column             required  meaning
=================  ========  ==============================================================
Ref                yes       the item's reference, unique (``GR 01``, ``Regen PM14 b``)
Kind               yes       action, measure, project or risk
Description        yes       what is monitored
Portfolio          yes       the cabinet portfolio that returns it
Theme              yes       the Council Plan theme
Unit               measures  percent, number, money, rate, days, kg, km or score
Polarity           measures  higher or lower (which way is better); required with a target
Target             no        empty, ``N/A`` or ``No target`` mean no target
Target Q1 .. Q4    no        the target for one quarter (a profile for cumulative measures);
                             a quarter without one uses Target
Previous actual    no        last reported value, used for direction of travel
Previous period    no        the quarter Previous actual is for (``2024/25 Q4``); without
                             it, Previous actual is last year's outturn, compared at Q4 only
Lead officer       no        who answers for it
Email              no        where the return goes
Green within       no        how far worse than target is still Green (default 2%)
Amber within       no        how far worse than target is still Amber (default 10%)
Blue from          no        how far better than target is Blue (default 10%)
Minimum, Maximum   no        plausible range of the actual; percent defaults to 0%-100%
=================  ========  ==============================================================

Percent values follow Excel: a cell showing 4.7% holds 0.047, and the text ``4.7%`` means the
same. A faulty register is refused with every problem listed, not the first only.

Registers as councils keep them load as they are: the header row may sit below a title and
blank rows, a CSV may be UTF-8 (with or without a BOM) or Windows' cp1252 (what Excel writes as
plain "CSV"), and an ``.xlsx`` is pre-scanned like a return (:mod:`derbyxl.guard`) before
python-calamine reads it.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import marshal
import math
import operator
import re
import zlib
from collections import Counter
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from derbyxl.rag import KEY, Tolerances
from derbyxl.runner import few_collections, give_back_memory
from derbyxl.values import UNITS, normalise_unit, parse_value

KINDS = ("action", "measure", "project", "risk")
_KIND_ALIASES = {
    "actions": "action",
    "delivery plan action": "action",
    "measures": "measure",
    "performance measure": "measure",
    "pm": "measure",
    "kpi": "measure",
    "projects": "project",
    "priority project": "project",
    "risks": "risk",
    "strategic risk": "risk",
}
_POLARITY_ALIASES = {
    **{w: "higher" for w in ("higher", "high", "up", "bigger", "larger", "greater", "more", "increase", "+")},
    **{f"{w} is better": "higher" for w in ("higher", "high", "bigger", "larger", "greater", "more")},
    **{w: "lower" for w in ("lower", "low", "down", "smaller", "less", "fewer", "decrease", "-")},
    **{f"{w} is better": "lower" for w in ("lower", "low", "smaller", "less", "fewer")},
}
REQUIRED_COLUMNS = ("Ref", "Kind", "Description", "Portfolio", "Theme", "Unit", "Polarity", "Target", "Previous actual")
QUARTER_TARGET_COLUMNS = ("Target Q1", "Target Q2", "Target Q3", "Target Q4")
OPTIONAL_COLUMNS = ("Lead officer", "Email", "Green within", "Amber within", "Blue from", "Minimum", "Maximum", *QUARTER_TARGET_COLUMNS, "Previous period")
#: How far down a sheet or CSV to look for the header row, below titles and blank rows.
HEADER_SEARCH_ROWS = 30
#: A number written plainly (12, -3.5): read as it is, whatever the unit.
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NO_TARGET = {"", "n/a", "na", "no target", "n/a - action", "n/a - project", "n/a project", "none", "-"}


def header_key(text) -> str:
    """How headers are compared: case, spacing and underscores ignored."""
    return "".join(str(text or "").replace("_", " ").split()).lower()


class Rare(NamedTuple):
    """The fields of an item that most items leave as they are by default (see :class:`Item`),
    read as the item's own attributes (``item.tolerances``)."""

    lead_officer: str | None = None
    email: str | None = None
    tolerances: Tolerances = KEY
    minimum: float | None = None
    maximum: float | None = None
    #: Targets for Q1..Q4 where the register profiles the year (None where it does not).
    quarter_targets: tuple[float | None, float | None, float | None, float | None] | None = None
    #: The period key of ``previous_actual`` when the register says (``2024-25-Q4``).
    previous_period: str | None = None


#: The defaults, shared by every item that has them all.
NO_RARE = Rare()


class Item(NamedTuple):
    """One monitored item of the register.

    A named tuple rather than a dataclass: a register of 200,000 items is built, held, and
    handed to worker processes (:mod:`derbyxl.runner`), and a tuple is built about 8x faster,
    takes about a third of the memory and is unpickled about 10x faster
    (``bench/README.md``, seventh session). The seven fields most items leave at their
    defaults (:class:`Rare`) are one field, shared, read as attributes of the item: 128 bytes
    an item instead of 184, 33 MB of a register of 597,000 items (and as much in each worker).
    An item does not keep the register row it came from (nothing read it: 16 MB of numbers at
    that size); the register's problems name their rows when it is read.
    """

    ref: str
    kind: str
    description: str
    portfolio: str
    theme: str
    unit: str | None = None
    polarity: str | None = None
    target: float | None = None
    previous_actual: float | None = None
    rare: Rare = NO_RARE

    lead_officer = property(operator.attrgetter("rare.lead_officer"))
    email = property(operator.attrgetter("rare.email"))
    tolerances = property(operator.attrgetter("rare.tolerances"))
    minimum = property(operator.attrgetter("rare.minimum"))
    maximum = property(operator.attrgetter("rare.maximum"))
    quarter_targets = property(operator.attrgetter("rare.quarter_targets"))
    previous_period = property(operator.attrgetter("rare.previous_period"))

    def target_for(self, quarter: int) -> float | None:
        """The target for a quarter (1-4): its own when the register profiles it, else Target."""
        by_quarter = self.rare.quarter_targets
        if by_quarter is not None:
            t = by_quarter[quarter - 1]
            if t is not None:
                return t
        return self.target

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The plausible range of the actual: percent measures default to 0%-100%."""
        lo, hi = self.rare.minimum, self.rare.maximum
        if self.unit == "percent":
            lo = 0.0 if lo is None else lo
            hi = 1.0 if hi is None else hi
        return lo, hi


@dataclass(frozen=True)
class RegisterProblem:
    """One fault in the register: where it is and what is wrong."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        return (", ".join(where) + ": " if where else "") + self.message


class RegisterError(Exception):
    """The register cannot be used; ``problems`` lists every fault found."""

    def __init__(self, source: str, problems: list[RegisterProblem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the register")


@dataclass
class Register:
    """The items of one year, in the order the register lists them."""

    items: list[Item]
    source: str = ""

    def __post_init__(self):
        self.by_ref = {item.ref: item for item in self.items}
        self._by_portfolio: dict[str, list[Item]] = {}
        for item in self.items:
            self._by_portfolio.setdefault(item.portfolio, []).append(item)
        self._fingerprints: dict[str, str] = {}
        self._compact: bytes | None = None

    def __reduce__(self):
        # Pickled (for worker processes) as its compact form, the one the results database
        # keeps (:func:`_keep`): made once, so a register read from that database or just
        # kept there is sent without being encoded again (0.2 s at 199,000 items).
        return _from_compact, (self.compact(), self.source, self._fingerprints)

    def compact(self) -> bytes:
        """The items in marshal's format by columns (their :class:`Rare` fields as tuples, the
        defaults and the KEY as None), compressed: 1.8 MB for the benchmark's 199,000 items.
        Made once, then kept."""
        if self._compact is None:
            columns = list(zip(*self.items))
            columns[_RARE_AT] = tuple(None if r is NO_RARE else (*r[:2], None if r.tolerances is KEY else astuple(r.tolerances), *r[3:]) for r in columns[_RARE_AT])
            self._compact = zlib.compress(marshal.dumps(columns), 1)
        return self._compact

    @property
    def is_sample(self) -> bool:
        """Whether this is the bundled sample register (what commands load without --register)."""
        try:
            return bool(self.source) and Path(self.source).resolve() == sample_register_path().resolve()
        except OSError:
            return False

    @property
    def portfolios(self) -> list[str]:
        """Portfolios in the order they first appear."""
        return list(self._by_portfolio)

    @property
    def themes(self) -> list[str]:
        return list(dict.fromkeys(item.theme for item in self.items))

    def for_portfolio(self, portfolio: str) -> list[Item]:
        return list(self._by_portfolio.get(portfolio, ()))

    def find_portfolio(self, name: str) -> str | None:
        """The portfolio whose name matches, ignoring case and spacing."""
        if not hasattr(self, "_portfolio_keys"):
            self._portfolio_keys = {header_key(p): p for p in reversed(self.portfolios)}
        return self._portfolio_keys.get(header_key(name))

    @staticmethod
    def _hash(items) -> str:
        h = hashlib.sha256()
        for item in items:
            # Every field, in the order they were declared: repr is exact for floats.
            values = [getattr(item, name) for name in _FINGERPRINT_FIELDS]
            values[_TOLERANCES] = _KEY_TUPLE if item.tolerances is KEY else astuple(item.tolerances)
            h.update(repr(values).encode())
            h.update(b"\n")
        return h.hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """A short hash of the whole register: of its file when it was loaded from one (any
        change to the file changes it), else of its items."""
        if "" not in self._fingerprints:
            self._fingerprints[""] = self._hash(self.items)
        return self._fingerprints[""]

    def portfolio_fingerprint(self, portfolio: str) -> str:
        """The same for one portfolio's items: a return is stale when this changes."""
        key = "p:" + portfolio
        if key not in self._fingerprints:
            self._fingerprints[key] = self._hash(self.for_portfolio(portfolio))
        return self._fingerprints[key]

    def counts(self) -> dict[str, Counter]:
        """Per portfolio, how many items of each kind."""
        out: dict[str, Counter] = {}
        for item in self.items:
            out.setdefault(item.portfolio, Counter())[item.kind] += 1
        return out


def _from_compact(compact: bytes, source: str, fingerprints: dict[str, str]) -> Register:
    """The register whose :meth:`Register.compact` form this is.

    Raises:
        ValueError, TypeError, EOFError, zlib.error: when ``compact`` is damaged.
    """
    columns = marshal.loads(zlib.decompress(compact))
    if len(columns) != len(Item._fields) or len({len(c) for c in columns}) != 1 or not columns[0]:
        raise ValueError("the compact register has columns missing, empty or of unequal lengths")
    shared: dict[tuple, Rare] = {}
    columns[_RARE_AT] = [NO_RARE if r is None else shared.get(r) or shared.setdefault(r, Rare(r[0], r[1], KEY if r[2] is None else Tolerances(*r[2]), *r[3:])) for r in columns[_RARE_AT]]
    register = Register(list(map(Item._make, zip(*columns))), source=source)
    register._fingerprints.update(fingerprints)
    register._compact = compact
    return register


#: The fields a fingerprint hashes, in this order (every field, as they were declared before
#: the rare ones were put together: fingerprints stamped in templates and kept in histories
#: stay valid).
_FINGERPRINT_FIELDS = ("ref", "kind", "description", "portfolio", "theme", "unit", "polarity", "target", "previous_actual", *Rare._fields[:2], "tolerances", *Rare._fields[3:])
_TOLERANCES = _FINGERPRINT_FIELDS.index("tolerances")
_KEY_TUPLE = astuple(KEY)


def _register_limits():
    """Bounds for a register workbook: far larger than a return's, still small enough that
    python-calamine never allocates a grid it cannot hold (see :mod:`derbyxl.guard`)."""
    from derbyxl.guard import Limits

    return Limits(
        max_file_bytes=200_000_000,
        max_uncompressed_bytes=2_000_000_000,
        max_compression_ratio=1_000,
        max_rows=1_000_000,
        max_cols=80,
        max_cells=20_000_000,
        max_seconds=600.0,
    )


def _csv_rows(data: bytes) -> Iterator[list]:
    """A CSV's rows, decoded as UTF-8 (with or without a BOM), else as Windows-1252, which is
    what Excel writes when a sheet is saved as plain "CSV" (a £ is one byte, 0xA3, there).
    The text is decoded as it is read, not held whole (a StringIO of a 9 MB register holds
    36 MB: four bytes a character)."""
    try:
        check = codecs.getincrementaldecoder("utf-8")()
        for at in range(0, len(data), 1 << 20):  # checked a megabyte at a time, then dropped
            check.decode(data[at : at + (1 << 20)])
        check.decode(b"", final=True)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        encoding = "cp1252"
    return csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace", newline=""))


def _read_rows(path: Path) -> Iterator[list]:
    """A register workbook's rows, titles and header included, one at a time (a CSV is read
    by :func:`load_register` itself, which hashes the same bytes)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".ods"):
        yield from _read_workbook(path)
        return
    if suffix == ".xls":
        raise RegisterError(str(path), [RegisterProblem(None, None, "this is an old-style .xls workbook: open it and save it as Excel Workbook (.xlsx), or as CSV")])
    raise RegisterError(str(path), [RegisterProblem(None, None, f"a register is an .xlsx or .csv file, not {suffix or 'a file without an extension'}")])


def _read_workbook(path: Path) -> Iterator[list]:
    """The rows of the ``Register`` sheet (or the only sheet), read by python-calamine once the
    file has passed the same pre-scan as a return: a register is emailed about too."""
    import python_calamine as calamine

    from derbyxl.guard import scan

    if path.suffix.lower() != ".ods":
        res = scan(path, _register_limits(), workbook=path.name)
        if not res.ok:
            problems = []
            for f in res.findings:
                if f.severity == "error":
                    detail = f.message.split(": ", 1)[-1]  # the particulars, without the title written for returns
                    tidy = "delete anything far below or right of the register, " if f.code == "sheet-too-large" else ""
                    problems.append(RegisterProblem(None, None, f"The register workbook cannot be read safely: {detail}. Open it in Excel, {tidy}save it as Excel Workbook (.xlsx) and try again"))
            raise RegisterError(str(path), problems)
    try:
        wb = calamine.CalamineWorkbook.from_path(str(path))
        names = wb.sheet_names
        wanted = next((n for n in names if header_key(n) == "register"), None)
        try:
            visible = [s.name for s in wb.sheets_metadata if "hidden" not in str(s.visible).lower()] or names
        except AttributeError:  # python-calamine before 0.2 tells no visibility
            visible = names
        if wanted is None and len(visible) == 1:
            wanted = visible[0]
        if wanted is None:
            raise RegisterError(str(path), [RegisterProblem(None, None, f"no sheet named 'Register' (sheets: {', '.join(names)}); name the register's sheet Register")])
        rows = wb.get_sheet_by_name(wanted).to_python(skip_empty_area=False)
    except RegisterError:
        raise
    except Exception as exc:  # noqa: BLE001 - calamine raises assorted types for damaged files
        raise RegisterError(str(path), [RegisterProblem(None, None, f"the workbook could not be read ({type(exc).__name__}: {exc}); open it in Excel, save it, and try again")]) from exc
    yield from rows  # an empty cell is "", which the parser takes as empty


def cell_text(v) -> str:
    """A cell's value as tidy text: whole floats without '.0', spaces (and NBSP) folded."""
    if v is None:
        return ""
    if v.__class__ is str:
        return " ".join(v.split())  # str.split() folds NBSP and other Unicode spaces too
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


@few_collections()
def load_register(path: str | Path, cache: str | Path | None = None) -> Register:
    """Load and check a register.

    Args:
        path: an ``.xlsx`` with a ``Register`` sheet, or a ``.csv``.
        cache: a results database (:class:`derbyxl.cache.FileCache`) where a register once
            checked is kept by its file's SHA-256, so that the next command given the same
            file reads it back (0.2 s for the benchmark's 199,000 items) rather than
            parsing and checking it again (1.1 s). A faulty register is never kept.

    Returns:
        The :class:`Register`.

    Raises:
        RegisterError: listing every problem found, by row and column.
        FileNotFoundError: when the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no register at {path}")
    if path.is_dir():
        raise RegisterError(str(path), [RegisterProblem(None, None, "this is a folder; give the register's file (.xlsx or .csv)")])
    csv_file = path.suffix.lower() in (".csv", ".txt")
    data = path.read_bytes() if csv_file else None  # read once: hashed and parsed
    digest = _digest(path, data)
    register = _kept(cache, digest, str(path)) if cache is not None else None
    if register is None:
        register = parse_register(_csv_rows(data) if csv_file else _read_rows(path), source=str(path))
        register._fingerprints[""] = digest[:16]
        if cache is not None:
            _keep(cache, digest, register)
    give_back_memory()  # what parsing it, or reading it back, took for a while
    return register


#: What a register is kept under in the results database (its file's SHA-256 is the key).
_CACHE_CONTEXT = "register"
_RARE_AT = Item._fields.index("rare")


def _keep(cache: str | Path, digest: str, register: Register) -> None:
    """Keep a checked register in the results database, in its compact form with its
    fingerprints. Nothing is raised: it is a cache."""
    from derbyxl.cache import FileCache

    with FileCache(cache) as db:
        db.put_many({digest: marshal.dumps((register._fingerprints, register.compact()))}, _CACHE_CONTEXT)


def _kept(cache: str | Path, digest: str, source: str) -> Register | None:
    """The register kept for a file with this SHA-256, or None."""
    from derbyxl.cache import FileCache

    with FileCache(cache) as db:
        blob = db.get_many([digest], _CACHE_CONTEXT).get(digest)
    if blob is None:
        return None
    try:
        fingerprints, compact = marshal.loads(blob)
        if fingerprints.get("") != digest[:16]:
            return None  # another file's: parsed again
        return _from_compact(compact, source, fingerprints)
    except (ValueError, TypeError, AttributeError, EOFError, zlib.error):
        return None  # damaged: parsed again


#: SHA-256 of files hashed in this process, by path, size, modification time and inode.
_DIGESTS: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _digest(path: Path, data: bytes | None = None) -> str:
    """The SHA-256 of a file (of ``data``, its bytes, when already read). A file hashed
    before in this process and unchanged since (the same size, modification time and inode)
    is not read again: a command asks before loading the register and again as it loads."""
    key = _stat_key(path)
    if data is not None or key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(path.read_bytes() if data is None else data).hexdigest()
    return _DIGESTS[key]


def file_fingerprint(path: str | Path) -> str:
    """The fingerprint of a register loaded from ``path``, without loading it."""
    return _digest(Path(path))[:16]


def _find_header(rows: Iterator[list]) -> tuple[list | None, int, list[tuple[int, list]]]:
    """The header row, its 1-based number, and the rows looked at before it: the first row
    among the first :data:`HEADER_SEARCH_ROWS` that holds Ref and two more of the required
    headers (a register may open with a title, a date and blank rows)."""
    wanted = {header_key(c) for c in REQUIRED_COLUMNS}
    seen: list[tuple[int, list]] = []
    for n, row in enumerate(rows, start=1):
        keys = {header_key(c) for c in row if c is not None}
        if "ref" in keys and len(keys & wanted) >= 3:
            return row, n, seen
        seen.append((n, row))
        if n >= HEADER_SEARCH_ROWS:
            break
    return None, 0, seen


def parse_register(rows: Iterable[list], source: str = "register") -> Register:
    """Build a register from rows of cells (a list, or an iterator read once): the header row
    is the first, or the first below titles and blank rows that names the required columns."""
    problems: list[RegisterProblem] = []
    rows = iter(rows)
    first, header_row, seen_rows = _find_header(rows)
    if first is None:
        if not seen_rows:
            raise RegisterError(source, [RegisterProblem(None, None, "the register is empty")])
        best = max(seen_rows, key=lambda r: sum(1 for c in r[1] if cell_text(c)))
        found = [cell_text(c) for c in best[1] if cell_text(c)]
        raise RegisterError(
            source,
            [RegisterProblem(None, None, f"no header row naming {', '.join(REQUIRED_COLUMNS)} in the first {HEADER_SEARCH_ROWS} rows; the fullest row (row {best[0]}) has: {', '.join(found) or 'nothing'}")],
        )
    header = [header_key(h) for h in first]
    columns: dict[str, int] = {}
    for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        key = header_key(name)
        if key in header:
            columns[name] = header.index(key)
        elif name in REQUIRED_COLUMNS:
            problems.append(RegisterProblem(header_row, name, "required column is missing"))
    if problems:
        seen = ", ".join(repr(cell_text(h)) for h in first if cell_text(h))
        problems.append(RegisterProblem(header_row, None, f"the header row (row {header_row}) has: {seen}; headers are matched ignoring case and spaces"))
        raise RegisterError(source, problems)

    width = max(columns.values()) + 1
    present = [name for name in _FIELD_COLUMNS if name in columns]
    pick = operator.itemgetter(*(columns[name] for name in present))  # at least the 5 required
    at = {name: present.index(name) if name in present else len(present) for name in _FIELD_COLUMNS}
    kind_cells = operator.itemgetter(*(at[name] for name in _KIND_COLUMNS))
    number_cells = operator.itemgetter(*(at[name] for name in _NUMBER_COLUMNS))
    ref_i, desc_i, port_i, theme_i = (columns[n] for n in ("Ref", "Description", "Portfolio", "Theme"))
    lead_i, email_i = columns.get("Lead officer"), columns.get("Email")
    # Kind, unit, polarity, targets and tolerances repeat across rows: parse each combination
    # once. Only the latest combinations are kept: a memo of every one held each row's raw
    # cells until the end, and the memory they took stayed with the process (a register of
    # 597,000 items parsed in 473 MB, and in 319 MB with the memo bounded; no slower).
    memo: dict[tuple, tuple[tuple, list[tuple[str, str]]]] = {}
    texts: dict[object, str] = {}
    rares: dict[tuple, Rare] = {}  # items' rare fields, shared where they are the same
    items: list[Item] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=header_row + 1):
        first = row[ref_i] if len(row) > ref_i else None
        if first is None or first.__class__ is not str or not first.strip():  # no Ref: a blank row?
            try:
                blank = not "".join(row).strip()  # rows of a CSV: all text
            except TypeError:  # a workbook's row: numbers and None among the text
                blank = not any(c is not None and str(c).strip() for c in row)
            if blank:
                continue
        if len(row) < width:
            row = [*row, *([None] * (width - len(row)))]
        key = pick(row)
        if key not in memo:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            cells = (*key, None)  # a column the register lacks reads as the None at the end
            memo[key] = _parse_fields(kind_cells(cells), number_cells(cells))
        fields, found = memo[key]
        for col, msg in found:
            problems.append(RegisterProblem(n, col, msg))
        ref = cell_text(row[ref_i])
        if not ref:
            problems.append(RegisterProblem(n, "Ref", "Ref is empty"))
        elif ref in seen:
            problems.append(RegisterProblem(n, "Ref", f"duplicate ref {ref!r} (first on row {seen[ref]})"))
        else:
            seen[ref] = n
        # Texts that repeat from row to row (a collection from many councils repeats each
        # measure's description) are kept once: the 199,000 items of the benchmark's register
        # took 157 MB and take 131 MB.
        v = row[desc_i]
        description = texts[v] if v in texts else texts.setdefault(v, cell_text(v))
        v = row[port_i]
        portfolio = texts[v] if v in texts else texts.setdefault(v, cell_text(v))
        v = row[theme_i]
        theme = texts[v] if v in texts else texts.setdefault(v, cell_text(v))
        if not (description and portfolio and theme):
            for col, text in (("Description", description), ("Portfolio", portfolio), ("Theme", theme)):
                if not text:
                    problems.append(RegisterProblem(n, col, f"{col} is empty"))
        kind, unit, polarity, target, previous, tolerances, minimum, maximum, quarter_targets, previous_period = fields
        if kind is None or not ref:
            continue
        lead = (texts[lead] if lead in texts else texts.setdefault(lead, cell_text(lead) or None)) if lead_i is not None and (lead := row[lead_i]) else None
        email = (texts[email] if email in texts else texts.setdefault(email, cell_text(email) or None)) if email_i is not None and (email := row[email_i]) else None
        if lead is None and email is None and tolerances is KEY and minimum is None and maximum is None and quarter_targets is None and previous_period is None:
            rare = NO_RARE
        else:
            key = (lead, email, tolerances, minimum, maximum, quarter_targets, previous_period)
            rare = rares.get(key) or rares.setdefault(key, Rare(*key))
        item = Item(ref, kind, description, portfolio, theme, unit, polarity, target, previous, rare)
        items.append(item)
    if problems:
        raise RegisterError(source, problems)
    if not items:
        raise RegisterError(source, [RegisterProblem(None, None, "the register lists no items")])
    return Register(items, source=source)


#: How many combinations of an item's typed fields :func:`parse_register` keeps parsed.
_MEMO_SIZE = 4096

#: The columns whose values :func:`_parse_fields` turns into an item's typed fields: those
#: whose combinations repeat from row to row, and the numbers, which mostly do not.
_KIND_COLUMNS = ("Kind", "Unit", "Polarity", "Green within", "Amber within", "Blue from", "Previous period")
_NUMBER_COLUMNS = ("Target", "Previous actual", "Minimum", "Maximum", *QUARTER_TARGET_COLUMNS)
_FIELD_COLUMNS = _KIND_COLUMNS + _NUMBER_COLUMNS
_NO_QUARTER_TARGETS = [None] * len(QUARTER_TARGET_COLUMNS)


def _parse_fields(kind_cells: tuple, number_cells: tuple) -> tuple[tuple, list[tuple[str, str]]]:
    """Kind, unit, polarity, numbers and tolerances from one row's raw cells (those of
    :data:`_KIND_COLUMNS` and :data:`_NUMBER_COLUMNS`, in order).

    Returns:
        (kind, unit, polarity, target, previous, tolerances, minimum, maximum,
        quarter_targets, previous_period) and the
        problems found, as (column, message).
    """
    kind, unit, polarity, pol_text, tolerances, previous_period, early, late = _kind_fields(*kind_cells)
    problems = list(early)
    numbers = []
    for col, value in zip(_NUMBER_COLUMNS, number_cells):
        if value is None or value == "":
            numbers.append(None)
        elif value.__class__ is str and _PLAIN_NUMBER.fullmatch(value):
            numbers.append(float(value))  # what parse_value makes of it, without its message
        elif (value.__class__ is float or value.__class__ is int) and (unit != "percent" or -1 <= value <= 1) and math.isfinite(value):
            numbers.append(float(value))  # a workbook's number cell (a percent one is checked by _number)
        else:
            numbers.append(_number(value, col, unit, problems))
    target, previous, minimum, maximum, *by_quarter = numbers
    quarter_targets = None if by_quarter == _NO_QUARTER_TARGETS else tuple(by_quarter)
    if kind == "measure" and (target is not None or quarter_targets) and polarity is None and not pol_text:
        problems.append(("Polarity", "a measure with a target needs a polarity (higher or lower)"))
    if kind != "measure" and kind is not None and (target is not None or quarter_targets):
        for col, t in zip(("Target", *QUARTER_TARGET_COLUMNS), (target, *by_quarter)):
            if t is not None:
                problems.append((col, f"a {kind} has no target"))
    problems.extend(late)
    fields = (kind, unit if kind == "measure" else None, polarity, target, previous, tolerances, minimum, maximum, quarter_targets, previous_period)
    return fields, problems


def _number(value, col: str, unit: str | None, problems: list[tuple[str, str]]) -> float | None:
    """A number cell that is not plainly written: "N/A", "4.7%", "£1,200", a typed number..."""
    if isinstance(value, str) and value.strip().lower() in _NO_TARGET:
        return None
    parsed = parse_value(value, unit or "number")
    if parsed.code in (None, "value-normalised"):
        if parsed.value is not None and unit == "percent" and not isinstance(value, str) and abs(parsed.value) > 1 and col not in ("Minimum", "Maximum"):
            problems.append((col, f"{value!r} in a percent measure would be {parsed.value * 100:g}%; write {value}% or {parsed.value / 100:g}"))
            return None
        return parsed.value
    problems.append((col, f"{col} is not a number: {parsed.detail}"))
    return None


@functools.lru_cache(maxsize=4096)
def _kind_fields(kind_cell, unit_cell, polarity_cell, green_cell, amber_cell, blue_cell, period_cell=None) -> tuple:
    """The part of a row's fields that repeats from row to row (its numbers do not): kind,
    unit, polarity (and the polarity as written), tolerances, and the problems found, those
    reported before the numbers' and those after. Results are shared: never change them."""
    early: list[tuple[str, str]] = []
    p = lambda col, msg: early.append((col, msg))  # noqa: E731
    kind_text = cell_text(kind_cell).lower()
    kind = kind_text if kind_text in KINDS else _KIND_ALIASES.get(kind_text)
    if kind is None:
        p("Kind", f"unknown kind {kind_text!r}; use one of {', '.join(KINDS)}")
    unit_text = cell_text(unit_cell)
    unit = normalise_unit(unit_text) if unit_text else None
    if unit_text and unit is None:
        p("Unit", f"unknown unit {unit_text!r}; use one of {', '.join(UNITS)}")
    if kind == "measure" and not unit_text:
        p("Unit", "a measure needs a unit")
    pol_text = cell_text(polarity_cell).lower()
    polarity = _POLARITY_ALIASES.get(pol_text) if pol_text else None
    if pol_text and polarity is None:
        p("Polarity", f"unknown polarity {pol_text!r}; use higher or lower")
    late: list[tuple[str, str]] = []
    tol = {}
    for col, attr, value in (("Green within", "green_within", green_cell), ("Amber within", "amber_within", amber_cell), ("Blue from", "blue_from", blue_cell)):
        if value is None or cell_text(value) == "":
            continue
        parsed = parse_value(value, "percent")
        if parsed.value is None or parsed.value < 0 or parsed.code not in (None, "value-normalised"):
            late.append((col, f"{col} must be a percentage such as 2% or 0.02, not {value!r}"))
        elif parsed.value > 1:
            late.append((col, f"{col} {value!r} would be {parsed.value * 100:g}%; write it as a percentage such as 2%"))
        else:
            tol[attr] = parsed.value
    tolerances = KEY
    if tol:
        try:
            tolerances = Tolerances(**{**asdict(KEY), **tol})
        except ValueError as exc:
            late.append(("Amber within", str(exc)))
    previous_period = None
    period_text = cell_text(period_cell)
    if period_text:
        from derbyxl.periods import period_key

        previous_period = period_key(period_text)
        if previous_period is None:
            late.append(("Previous period", f"{period_text!r} is not a quarter; write it like 2024/25 Q4"))
    return kind, unit, polarity, pol_text, tolerances, previous_period, tuple(early), tuple(late)


def sample_register_path() -> Path:
    """The bundled sample register (Derby's 2024/25 items)."""
    return Path(__file__).parent / "sample" / "register.csv"


def sample_answers_path() -> Path:
    """The council's published Q4 2024/25 answers for the sample register."""
    return Path(__file__).parent / "sample" / "answers_2024-25-Q4.csv"
