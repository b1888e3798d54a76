"""The ``derbyxl`` command: a thin layer over the library.

Exit codes: 0 fine, 1 problems found in the data (or, with --strict, an incomplete quarter),
2 wrong usage (bad option, missing file, unreadable register). Errors go to stderr; no
traceback for an expected failure unless --debug is given.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from derbyxl import __version__
from derbyxl.periods import period_label, uk_time

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Quarterly performance returns, end to end in Excel.")
register_app = typer.Typer(no_args_is_help=True, help="Check the register of monitored items.")
history_app = typer.Typer(no_args_is_help=True, help="Read the history of consolidated quarters.")
app.add_typer(register_app, name="register")
app.add_typer(history_app, name="history")
portal_app = typer.Typer(no_args_is_help=True, help="Manage the returns portal's team accounts.")
app.add_typer(portal_app, name="portal")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # messages whole on one line, for logs and grep

RegisterOpt = typer.Option(None, "--register", "-r", metavar="FILE", help="The register (.xlsx with a Register sheet, or .csv). Default: the bundled sample.")
PeriodOpt = typer.Option(..., "--period", "-p", metavar="PERIOD", help="The quarter, e.g. 2024-25-Q4 or '2024/25 Q4'.")
NoCacheOpt = typer.Option(False, "--no-cache", metavar="", help="Read and check every file again, ignoring results kept from earlier runs.")
HistoryOpt = typer.Option(None, "--history", metavar="FILE", help="The SQLite history database. Default: OUT/history.sqlite.")


class UsageError(Exception):
    """Wrong usage: exit 2."""


def _version(value: bool):
    if value:
        out.print(f"derbyxl {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, metavar="", help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", metavar="", help="Show tracebacks for unexpected errors."),
):
    if debug:
        os.environ["DERBYXL_DEBUG"] = "1"


def _load_register(path: Optional[Path], faulty_exit: int = 2, workers: bool = True, cache: Optional[Path] = None):
    """Load the register (the bundled sample when no path): a faulty one is a usage error
    for the other commands (exit 2) and a finding for `register check` (exit 1). With a
    ``cache`` (a results database), a register checked before is read back from it."""
    from derbyxl.register import RegisterError, load_register, sample_register_path
    from derbyxl.runner import start_early

    if workers:  # a command that reads returns: their workers' server starts on another core meanwhile
        start_early()
    try:
        return load_register(path or sample_register_path(), cache=cache)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from exc
    except RegisterError as exc:
        err.print(f"[red]The register {escape(str(exc.source))} has {len(exc.problems)} problem(s):[/red]")
        for p in exc.problems:
            err.print(f"  - {p}", markup=False, highlight=False)
        raise typer.Exit(faulty_exit)


def _due(text: Optional[str]):
    """The date --due names (None when not given)."""
    if not text:
        return None
    from derbyxl.read import as_date

    day = as_date(text)
    if day is None:
        raise UsageError(f"--due {text!r} is not a date; write it like 2025-04-22 or 22/04/2025")
    return day


def _history_folder_exists(history: Optional[Path]) -> None:
    """A history named with --history must be in a folder that exists: a mistyped path would
    otherwise start an empty history, and a recorded quarter would no longer be protected."""
    if history is not None and not history.parent.is_dir():
        raise UsageError(f"no folder {history.parent} for the history database {history}; check the path (a new history is started only in a folder that exists)")


def _period(text: str):
    from derbyxl.periods import Period, PeriodError

    try:
        return Period.parse(text)
    except PeriodError as exc:
        raise UsageError(str(exc)) from exc


@register_app.command("check")
def register_check(path: Path = typer.Argument(..., help="The register file.")):
    """Load a register and print a summary per portfolio and kind, or every problem found.

    Example: derbyxl register check register.xlsx
    """
    from rich.table import Table

    reg = _load_register(path, faulty_exit=1, workers=False)
    table = Table(title=f"Register {path}")
    kinds = ("measure", "action", "project", "risk")
    table.add_column("Portfolio")
    for k in kinds:
        table.add_column(k.title() + "s", justify="right")
    table.add_column("Total", justify="right")
    totals = {k: 0 for k in kinds}
    for portfolio, counts in reg.counts().items():
        table.add_row(portfolio, *(str(counts[k]) for k in kinds), str(sum(counts.values())))
        for k in kinds:
            totals[k] += counts[k]
    table.add_row("[b]All[/b]", *(f"[b]{totals[k]}[/b]" for k in kinds), f"[b]{sum(totals.values())}[/b]")
    out.print(table)
    out.print(
        f"{len(reg.items)} items in {len(reg.portfolios)} portfolios "
        f"({totals['measure']} measures, {totals['action']} actions, {totals['project']} projects, {totals['risk']} risks); "
        f"fingerprint {reg.fingerprint}"
    )


@app.command()
def templates(
    register: Optional[Path] = RegisterOpt,
    period: str = PeriodOpt,
    out_dir: Path = typer.Option(Path("templates"), "--out", "-o", metavar="FOLDER", help="Folder to write the templates to."),
    portfolio: Optional[List[str]] = typer.Option(None, "--portfolio", metavar="NAME", help="Only this portfolio (repeatable)."),
    password: Optional[str] = typer.Option(None, "--password", metavar="TEXT", help="Protect sheets with this password (none by default)."),
    due: Optional[str] = typer.Option(None, "--due", metavar="DATE", help="The due date shown on each Cover, e.g. 2025-04-22 or 22/04/2025. Default: three weeks after the quarter ends."),
    history: Optional[Path] = typer.Option(None, "--history", metavar="FILE", help="History database: its latest actuals become 'Previous actual'. Default: outputs/history.sqlite if it exists."),
):
    """Write one return template per portfolio.

    Example: derbyxl templates --register register.xlsx --period 2024-25-Q4 --out templates/
    """
    from rich.progress import Progress
    from rich.table import Table

    from derbyxl.template import write_templates

    reg = _load_register(register)
    p = _period(period)
    due_date = _due(due)
    previous = _previous_actuals(history, p)
    names = portfolio or reg.portfolios
    # Refreshed as templates arrive, not by rich's own thread: a process running a second
    # thread does not fork, so its templates would be written one at a time.
    with Progress(console=err, transient=True, disable=len(names) < 5, auto_refresh=False) as bar:
        task = bar.add_task("Writing templates", total=len(names))

        def advance(_info) -> None:
            bar.advance(task)
            bar.refresh()

        try:
            written = write_templates(reg, p, out_dir, portfolios=names, previous=previous, password=password, progress=advance, due=due_date)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    table = Table(title=f"Templates for {p.label}")
    for col in ("Portfolio", "File", "Measures", "Actions", "Projects", "Risks"):
        table.add_column(col)
    for info in written:
        table.add_row(info.portfolio, str(info.path), *(str(info.counts.get(k, 0)) for k in ("Measures", "Actions", "Projects", "Risks")))
    out.print(table)
    if previous:
        shown = sum(1 for info in written for item in reg.for_portfolio(info.portfolio) if item.kind == "measure" and item.ref in previous)
        out.print(f"'Previous actual' taken from history for {shown} measures.")


def _previous_actuals(history: Optional[Path], period):
    """The history's latest actual of each measure before ``period`` (period key, value)."""
    from derbyxl.history import History

    path = history or DEFAULT_HISTORY
    if not path.exists():
        if history:
            raise UsageError(f"no history database at {path}")
        return {}
    with History(path) as h:
        return h.latest_values(before=period)


@app.command()
def validate(
    paths: List[Path] = typer.Argument(..., help="Returned workbooks, or folders of them."),
    register: Optional[Path] = RegisterOpt,
    period: Optional[str] = typer.Option(None, "--period", "-p", metavar="PERIOD", help="The quarter expected. Default: the latest any return claims."),
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE", help="Write the findings as JSON to this file ('-' for stdout)."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", metavar="FOLDER", help="Write a highlighted copy of each faulty return to this folder."),
    chase: Optional[Path] = typer.Option(None, "--chase", metavar="FILE", help="Write a CSV of every portfolio's return status, lead officers, emails and what to do (those to chase first)."),
    history: Optional[Path] = typer.Option(None, "--history", metavar="FILE", help="History database: earlier quarters' actuals for plausibility, and where each checked file's results are kept so the next command need not read it again. Default: results kept in your cache folder, earlier quarters from outputs/history.sqlite if it exists."),
    no_cache: bool = NoCacheOpt,
):
    """Check returned workbooks and report every finding.

    Writes nothing beside the returns: only the files asked for (--json, --annotate, --chase)
    and the cache of results.

    Exit 0 when there are no errors (warnings allowed), 1 when any error, 2 for wrong usage.

    Example: derbyxl validate returns/ --json findings.json --annotate outputs/annotated
    """
    from derbyxl.cache import FileCache
    from derbyxl.validate import validate_paths

    for path in paths:
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
    cache_path = _cache_path(history)
    reg = _load_register(register, cache=None if no_cache else cache_path)
    p = _period(period) if period else None
    with FileCache(cache_path) if not no_cache else nullcontext() as cache, _earlier_quarters(history or DEFAULT_HISTORY) as earlier:
        report = validate_paths(paths, reg, period=p, cache=cache, history=earlier)
    if report.other_register:
        err.print(f"[red]Error:[/red] {escape(report.other_register)}.", highlight=False)
    if json_out == "-":
        report.write_json(sys.stdout)
    else:
        from derbyxl.report_console import print_report

        print_report(report, out)
        if json_out:
            from derbyxl.xlsx_util import ensure_folder

            ensure_folder(Path(json_out).parent)
            with open(json_out, "w", encoding="utf-8") as fh:
                report.write_json(fh)
            out.print(f"Findings written to {json_out}")
    if annotate:
        from derbyxl.annotate import annotate_report

        written = annotate_report(report, annotate)
        (err if json_out == "-" else out).print(f"{len(written)} annotated copies written to {annotate}")
    s = report.stats
    console = err if json_out == "-" else out
    if report.ignored:
        ignored = report.ignored
        shown = ", ".join(ignored[:10]) + (f" and {len(ignored) - 10} more" if len(ignored) > 10 else "")
        console.print(f"Ignored {len(ignored)} file(s) that are not workbooks: {shown}", highlight=False)
    console.print(f"{s['files']} file(s): {s['valid']} valid, {s['errors']} error(s), {s['warnings']} warning(s)")
    if any(path.is_dir() for path in paths) and report.period:
        # A folder of returns is the quarter so far: say who has sent nothing yet.
        _print_not_returned(console, report.not_returned(reg.portfolios), len(reg.portfolios), report.period)
    if chase:
        _write_chase(console, report, reg, chase)
    raise typer.Exit(0 if report.valid else 1)


#: The history database commands read and consolidate writes when none is named.
DEFAULT_HISTORY = Path("outputs/history.sqlite")


def _cache_path(history: Optional[Path]) -> Path:
    """Where per-file results are kept: in the history database named, else in the user's
    cache folder (never in the folder the command is run from)."""
    from derbyxl.cache import default_cache_path

    return history if history is not None else default_cache_path()


@contextmanager
def _earlier_quarters(path: Path):
    """The history at ``path`` for plausibility baselines, when there is one that opens (a
    history that cannot be read only means the register's Previous actual is used)."""
    from derbyxl.history import History, HistoryBusy, HistoryUnavailable

    if not path.is_file():
        yield None
        return
    try:
        h = History(path)
    except (HistoryUnavailable, HistoryBusy):
        yield None
        return
    with h:
        yield h


def _print_not_returned(console, missing: list[str], total: int, period: str, shown: int = 10) -> None:
    from derbyxl.periods import Period

    label = Period.parse(period).label
    if not missing:
        console.print(f"Every portfolio has returned for {label}.")
        return
    names = "; ".join(missing[:shown]) + (f"; and {len(missing) - shown} more" if len(missing) > shown else "")
    console.print(f"[yellow]Not returned for {label}:[/yellow] {len(missing)} of {total} portfolios ({names})", highlight=False)


def _write_chase(console, report, register, path: Path) -> None:
    from derbyxl.chase import quarter_status, write_chase_csv

    rows = quarter_status(report, register)
    write_chase_csv(rows, path)
    console.print(f"Chase list written to {path}: {sum(r['status'] != 'valid' for r in rows)} of {len(rows)} portfolios to chase")


@app.command()
def consolidate(
    returns: Path = typer.Argument(Path("returns"), help="Folder of returned workbooks."),
    register: Optional[Path] = RegisterOpt,
    period: str = PeriodOpt,
    out_dir: Path = typer.Option(Path("outputs"), "--out", "-o", metavar="FOLDER", help="Folder for the master and history."),
    history: Optional[Path] = HistoryOpt,
    strict: bool = typer.Option(False, "--strict", metavar="", help="Fail (exit 1, no master) when any return is missing or invalid."),
    replace: bool = typer.Option(False, "--replace", metavar="", help="Replace a recorded quarter even when this run has fewer valid returns, fewer items with data or another register (the old master is archived)."),
    no_cache: bool = NoCacheOpt,
):
    """Merge the valid returns of a quarter into the master workbook and record its history.

    Nothing is written when no return is valid, or when the quarter is already recorded and
    this run would record less, unless --replace; a replaced master is kept in OUT/archive/.

    Example: derbyxl consolidate returns/ --register register.xlsx --period 2024-25-Q4 --out outputs/
    """
    from derbyxl.consolidate import ConsolidationBusy, MasterNotWritten, Refused
    from derbyxl.consolidate import consolidate as run
    from derbyxl.history import HistoryBusy

    if not returns.exists():
        raise UsageError(f"no such folder: {returns}")
    _history_folder_exists(history)
    cache_path = _cache_path(history)
    reg = _load_register(register, cache=None if no_cache else cache_path)
    p = _period(period)
    try:
        result = run(returns, reg, p, out_dir, history_path=history, cache_path=cache_path, strict=strict, replace=replace, use_cache=not no_cache)
    except (ConsolidationBusy, HistoryBusy, MasterNotWritten, Refused) as exc:
        err.print(f"[red]Not consolidated:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1)
    _print_consolidation(result)
    if strict and not result.complete:
        err.print("[red]--strict: the quarter is incomplete; no master written.[/red]")
        raise typer.Exit(1)
    raise typer.Exit(0)


def _place(f) -> str:
    """A finding's sheet!cell and a space, or nothing when it has no place (no stray "!")."""
    return f"{f.sheet}!{f.cell} " if f.sheet and f.cell else ""


def _print_consolidation(result):
    from rich.table import Table
    from rich.text import Text

    from derbyxl.report_console import MAX_FILE_ROWS

    subs = result.submissions
    if len(subs) > MAX_FILE_ROWS:
        used = sum(s.used for s in subs)
        out.print(f"{len(subs)} files received: {used} used, {len(subs) - used} not used (see the Submissions sheet).")
        subs = [s for s in subs if not s.used][:MAX_FILE_ROWS]
    table = Table(title=f"Submissions {result.period.label}" if len(subs) == len(result.submissions) else "Files not used")
    for col in ("Portfolio", "File", "Valid", "Errors", "Warnings", "Used"):
        table.add_column(col)
    for s in subs:
        fr = s.report
        table.add_row(fr.portfolio or "-", fr.workbook, "yes" if fr.valid else "[red]no[/red]", str(fr.errors), str(fr.warnings), s.note)
    if subs:
        out.print(table)
    for fr in [fr for fr in result.report.files if not fr.valid][:MAX_FILE_ROWS]:
        if not fr.valid:
            shown = [f for f in fr.findings if f.severity == "error"][:5]
            out.print(Text.assemble((fr.workbook, "red"), " left out: " + "; ".join(_place(f) + f.message for f in shown)), highlight=False)
    if result.missing:
        out.print(f"[yellow]No valid return from {len(result.missing)} portfolio(s):[/yellow] " + "; ".join(result.missing))
    if result.master:
        out.print(f"Master written: {result.master} ({len(result.rows)} items)")


@app.command()
def migrate(
    old: Path = typer.Argument(..., help="A filled return made from an older template or for another quarter."),
    register: Optional[Path] = RegisterOpt,
    period: str = PeriodOpt,
    new: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Where to write the new return (.xlsx); never the old file."),
    history: Optional[Path] = typer.Option(None, "--history", metavar="FILE", help="History database for 'Previous actual'. Default: outputs/history.sqlite if it exists."),
):
    """Carry an old return's answers into this quarter's template.

    Writes this quarter's template for the old return's portfolio with every answer carried
    over by Ref, and lists what could not be carried (items removed, units changed, new items).

    Example: derbyxl migrate returns/Place_2024-25-Q4.xlsx --register register.xlsx --period 2025-26-Q1 --out returns/Place_2025-26-Q1.xlsx
    """
    from derbyxl.migrate import MigrateError
    from derbyxl.migrate import migrate as run

    if not old.is_file():
        raise UsageError(f"no such file: {old}")
    reg = _load_register(register)
    p = _period(period)
    try:
        m = run(old, reg, p, new, previous=_previous_actuals(history, p))
    except MigrateError as exc:
        err.print(f"[red]Not migrated:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1)
    source = f" ({period_label(m.source_period)} return)" if m.source_period else ""
    out.print(f"{m.path}: {p.label} return for {m.portfolio}, {len(m.carried)} item(s) carried from {old.name}{source}.", highlight=False)
    for ref, why in m.left:
        out.print(f"  not carried: {ref} {why}", highlight=False, markup=False)
    out.print("The sign-off was not carried: the lead signs the new return before sending it.")


def _portal_available() -> None:
    try:
        import argon2  # noqa: F401
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the portal needs the portal extra ({exc.name} is not installed): pip install 'derbyxl[portal]'") from exc


@app.command()
def serve(
    period: str = PeriodOpt,
    register: Optional[Path] = RegisterOpt,
    home: Path = typer.Option(Path("portal"), "--home", metavar="FOLDER", help="Folder for the portal's uploads, database, history and masters."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", metavar="N", help="Port to listen on."),
    due: Optional[str] = typer.Option(None, "--due", metavar="DATE", help="The due date shown to leads, e.g. 22/04/2025."),
):
    """Start the returns portal: leads upload through personal links, the team tracks the quarter.

    Example: derbyxl serve --period 2025-26-Q1 --register register.xlsx --home portal/
    """
    _portal_available()
    import uvicorn

    from derbyxl.portal.app import create_app

    reg = _load_register(register)
    p = _period(period)
    application = create_app(home, reg, p, due=_due(due))
    out.print(f"Portal for {p.label} at http://{host}:{port}/team (state in {home}); Ctrl+C stops it.", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning")


@portal_app.command("add-user")
def portal_add_user(
    name: str = typer.Argument(..., help="The team member's sign-in name."),
    home: Path = typer.Option(Path("portal"), "--home", metavar="FOLDER", help="The portal's folder."),
    password_stdin: bool = typer.Option(False, "--password-stdin", metavar="", help="Read the password from standard input instead of asking."),
):
    """Create (or reset) a performance team account for the portal.

    Example: derbyxl portal add-user alex --home portal/
    """
    _portal_available()
    from derbyxl.portal.store import Store
    from derbyxl.xlsx_util import ensure_folder

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise UsageError("the password is too short: use at least 10 characters")
    ensure_folder(home)
    store = Store(home / "portal.sqlite")
    try:
        store.add_account(name, password)
    finally:
        store.close()
    out.print(f"Team account {name!r} can now sign in at /team/login.", highlight=False)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("."), "--dir", metavar="FOLDER", help="Folder holding templates/, returns/ and outputs/."),
):
    """Run the whole quarter on the bundled sample: templates, filled returns, validation, master.

    Example: derbyxl demo
    """
    from derbyxl.consolidate import consolidate as run
    from derbyxl.demo import fill_return, load_answers
    from derbyxl.periods import Period
    from derbyxl.register import load_register, sample_register_path
    from derbyxl.report_console import print_report
    from derbyxl.template import write_templates
    from derbyxl.validate import validate_paths

    reg = load_register(sample_register_path())
    period = Period.parse("2024-25-Q4")
    tdir, rdir, odir = workdir / "templates", workdir / "returns", workdir / "outputs"
    # The demo writes sample returns into returns/; it must never overwrite a real one there.
    marker = rdir / ".derbyxl-demo"
    ours = set(marker.read_text().split("\n")) if marker.exists() else set()
    foreign = [p.name for p in rdir.glob("*.xlsx")] if rdir.exists() else []
    foreign = [n for n in foreign if n not in ours]
    if foreign:
        raise UsageError(f"{rdir} holds returns the demo did not write ({', '.join(foreign[:3])}); run the demo with --dir pointing elsewhere")
    out.rule(f"1. Templates for {period.label} ({len(reg.items)} items, {len(reg.portfolios)} portfolios)")
    written = write_templates(reg, period, tdir)
    for info in written:
        out.print(f"  {info.path}")
    out.rule("2. Service leads fill them in (the council's published Q4 2024/25 answers)")
    answers = load_answers()
    returned = [fill_return(info.path, answers, rdir / info.path.name) for info in written]
    marker.write_text("\n".join(sorted(ours | {p.name for p in returned})))
    for path in returned:
        out.print(f"  {path}")
    out.rule("3. Validation")
    report = validate_paths(returned, reg, period=period)
    print_report(report, out)
    _print_not_returned(out, report.not_returned(reg.portfolios), len(reg.portfolios), period.key)
    _write_chase(out, report, reg, odir / "chase.csv")
    out.rule("4. Consolidation")
    result = run(returned, reg, period, odir)
    _print_consolidation(result)
    raise typer.Exit(0 if report.valid and result.master else 1)


@history_app.command("export")
def history_export(
    history: Path = typer.Option(Path("outputs/history.sqlite"), "--history", metavar="FILE", help="The history database."),
    dest: Path = typer.Option(Path("outputs/history.csv"), "--out", "-o", metavar="FILE", help="The file to write: .csv, or .parquet (needs pyarrow: pip install 'derbyxl[parquet]')."),
):
    """Write every consolidated value (each quarter's current run) as CSV or Parquet for BI
    tools: with description, unit, polarity, the target used, both directions of travel and
    the period each compared against, so one file answers a pivot without the register.

    Example: derbyxl history export --out outputs/history.csv
    """
    from derbyxl.history import History, ParquetUnavailable, export_parquet

    if not history.exists():
        raise UsageError(f"no history database at {history}")
    if dest.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"{dest}: the export is written as .csv or .parquet; name the file so")
    from derbyxl.xlsx_util import ensure_folder

    ensure_folder(dest.parent)
    with History(history) as h:
        try:
            n = export_parquet(h, dest) if dest.suffix.lower() == ".parquet" else h.export_csv(dest)
        except ParquetUnavailable as exc:
            raise UsageError(str(exc)) from exc
        periods = h.periods()
    out.print(f"{n} rows from {len(periods)} period(s) ({', '.join(periods)}) written to {dest}")


@history_app.command("show")
def history_show(history: Path = typer.Option(Path("outputs/history.sqlite"), "--history", metavar="FILE", help="The history database.")):
    """List the consolidated periods: items, returns and items with data of each one's current run.

    Example: derbyxl history show
    """
    from rich.table import Table

    from derbyxl.history import History

    if not history.exists():
        raise UsageError(f"no history database at {history}")
    with History(history) as h:
        runs = [h.current_run(p) for p in h.periods()]
    if not runs:
        out.print(f"No quarter has been consolidated into {history} yet.")
        return
    table = Table(title=f"Quarters in {history}")
    for col in ("Period", "Run", "Recorded", "Valid returns", "Items", "With data", "Register"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.period, str(r.id), uk_time(r.run_at), str(r.valid_returns), str(r.items), str(r.items_with_data), r.register_fingerprint)
    out.print(table)


@history_app.command("runs")
def history_runs(
    period: Optional[str] = typer.Argument(None, help="Only this quarter's runs."),
    history: Path = typer.Option(Path("outputs/history.sqlite"), "--history", metavar="FILE", help="The history database."),
):
    """List every consolidation run kept, the current one of each quarter marked.

    Example: derbyxl history runs 2025-26-Q1
    """
    from rich.table import Table

    from derbyxl.history import History

    if not history.exists():
        raise UsageError(f"no history database at {history}")
    p = _period(period) if period else None
    with History(history) as h:
        runs = h.runs(p)
    if not runs:
        out.print(f"No runs{' of ' + p.label if p else ''} in {history}.")
        return
    table = Table(title=f"Consolidation runs in {history}")
    for col in ("Run", "Period", "Recorded", "Files", "Valid returns", "Items with data", "Register", "Master", "Current"):
        table.add_column(col)
    for r in runs:
        master = r.archived or r.master or "-"
        table.add_row(str(r.id), r.period, uk_time(r.run_at), str(r.files), str(r.valid_returns), str(r.items_with_data), r.register_fingerprint, master, "yes" if r.current else "")
    out.print(table)


@history_app.command("restore")
def history_restore(
    period: str = typer.Argument(..., help="The quarter, e.g. 2025-26-Q1."),
    run_id: int = typer.Argument(..., help="The run to make current again (see derbyxl history runs)."),
    history: Path = typer.Option(Path("outputs/history.sqlite"), "--history", metavar="FILE", help="The history database."),
):
    """Make an earlier run of a quarter current again, its master put back byte for byte
    (the master it replaces is archived, so this too can be undone).

    Example: derbyxl history restore 2025-26-Q1 3
    """
    from derbyxl.consolidate import ConsolidationBusy, RestoreError, restore
    from derbyxl.history import HistoryBusy

    if not history.exists():
        raise UsageError(f"no history database at {history}")
    p = _period(period)
    try:
        run = restore(history, p, run_id)
    except RestoreError as exc:
        raise UsageError(str(exc)) from exc
    except (ConsolidationBusy, HistoryBusy) as exc:
        err.print(f"[red]Not restored:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1)
    out.print(f"Run {run.id} of {p.label} ({uk_time(run.run_at)}, {run.items_with_data} items with data) is current again; master: {run.master}")


#: What the system says when a path cannot be created or written.
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EDQUOT}


def _command():
    """The click command typer builds from ``app``, with help that reads like a person wrote
    it: typer 0.29 shows each value's Python type (``<bool>`` on plain flags and on --help,
    ``<list[Path]>``) and braces around required arguments (``{paths}...``), with no setting
    to turn that off, so each parameter of the built command is told to show its metavar
    (empty for flags) and arguments are written in capitals."""
    import typer.main

    command = typer.main.get_command(app)

    def tidy(cmd) -> None:
        for param in cmd.params:
            if param.param_type_name == "argument":
                name = (param.metavar or param.name).upper()
                param.metavar = name
                param.display_type_rich = lambda ctx: None
                param._usage_display_name = lambda name=name, many=param.nargs != 1, req=param.required: (name if req else f"[{name}]") + ("..." if many else "")
            elif getattr(param, "is_flag", False):
                param.metavar = ""
        get_help_option = cmd.get_help_option

        def help_option(ctx, get_help_option=get_help_option):
            option = get_help_option(ctx)
            if option is not None:
                option.metavar = ""
            return option

        cmd.get_help_option = help_option
        for sub in getattr(cmd, "commands", {}).values():
            tidy(sub)

    tidy(command)
    return command


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: runs the app, mapping expected failures to exit codes."""
    from derbyxl.runner import few_collections

    try:
        # With standalone_mode=False click returns the code of a typer.Exit instead of raising.
        # A command's results (200,000 records for 1,000 returns) live to its end: collecting
        # garbage among them while the report is printed would free nothing.
        with few_collections():
            code = _command().main(args=argv, prog_name="derbyxl", standalone_mode=False)
        if isinstance(code, int):
            return code
    except UsageError as exc:
        err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # noqa: BLE001
        # Typer may bring its own copy of click, so its usage errors are recognised by shape.
        if type(exc).__name__ == "Abort":
            return 1
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        from derbyxl.xlsx_util import NotReplaced, OutputNotWritable

        if isinstance(exc, NotReplaced):  # a template or copy open in Excel (on Windows)
            err.print(f"[red]Error:[/red] could not write {escape(str(exc.filename))} ({exc.strerror}); if it is open in Excel or another program, close it and run again", highlight=False)
            return 1
        if isinstance(exc, OutputNotWritable):
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            return 2
        if isinstance(exc, OSError) and exc.filename and exc.errno in _ENVIRONMENT_ERRNOS:
            # A folder or file of the environment (not a return: those become findings).
            err.print(f"[red]Error:[/red] cannot write to {escape(str(exc.filename))} ({exc.strerror}); choose a folder you can write to, or ask for access", highlight=False)
            return 2
        if os.environ.get("DERBYXL_DEBUG") == "1":
            raise
        err.print(f"[red]Unexpected error:[/red] {type(exc).__name__}: {escape(str(exc))} (run with --debug for details)", highlight=False)
        return 1
    return 0


def entry() -> None:
    """The console command."""
    from derbyxl.runner import ending

    code = main()
    ending()
    sys.exit(code)


if __name__ == "__main__":
    entry()
