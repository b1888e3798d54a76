"""Rendering validation reports for people: rich tables on the console."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from derbyxl.findings import Report

#: Above this many files the table lists only the files with errors, after a tally.
MAX_FILE_ROWS = 40


#: Below this many columns the findings are printed as a block each, not as a table (at 80
#: columns a seven-column table wraps its messages a word to a line).
WIDE = 120


def _print_blocks(findings, console: Console) -> None:
    """Each finding as a short block: where, what, and what to do, in the console's width."""
    console.print(f"Findings ({len(findings)})", style="bold")
    for fd in findings:
        where = "!".join(x for x in (fd.sheet, fd.cell) if x)
        head = Text.assemble((fd.severity, "red" if fd.severity == "error" else "yellow"), "  ", fd.workbook)
        if where:
            head.append(f"  {where}")
        if fd.ref:
            head.append(f"  ({fd.ref})")
        console.print(head, highlight=False)
        # Indented as a whole, so a long message wraps under itself, not under the margin.
        console.print(Padding(Text(f"{fd.code}: {fd.message}"), (0, 0, 0, 2), expand=False), highlight=False)
        console.print(Padding(Text(f"What to do: {fd.hint}", style="dim"), (0, 0, 0, 2), expand=False), highlight=False)


def print_report(report: Report, console: Console, max_findings: int = 200) -> None:
    """A summary table per workbook, then the findings (errors first).

    With many files (a county or national collection) the table keeps to the invalid ones and
    a tally, and the findings to a count by code and the first few (errors first): ``--json``
    has everything.
    """
    files = report.files
    if len(files) > MAX_FILE_ROWS:
        max_findings = min(max_findings, MAX_FILE_ROWS)
        st = report.stats
        console.print(f"{st['files']} returns checked: {st['valid']} valid, {st['files'] - st['valid']} invalid; {st['errors']} errors, {st['warnings']} warnings.")
        files = [fr for fr in files if not fr.valid][:MAX_FILE_ROWS]
    if files:
        title = "Returns checked" if len(files) == len(report.files) else f"Invalid returns (first {len(files)})"
        table = Table(title=title, show_lines=False)
        longest = max(len(fr.workbook) for fr in files)
        for col in ("Workbook", "Portfolio", "Period", "Items", "Errors", "Warnings", "Result"):
            if col == "Workbook":  # whole file names: folded onto a second line, never cut with "..."
                table.add_column(col, overflow="fold", min_width=min(longest, max(20, console.width // 3)))
            else:
                table.add_column(col, justify="right" if col in ("Items", "Errors", "Warnings") else "left", overflow="fold")
        for fr in files:
            table.add_row(
                fr.workbook,
                fr.portfolio or "-",
                fr.period or "-",
                str(fr.items),
                str(fr.errors),
                str(fr.warnings),
                "[green]valid[/green]" if fr.valid else "[red]invalid[/red]",
            )
        console.print(table)
    findings = sorted(report.findings, key=lambda f: (f.severity != "error", f.workbook))
    if not findings:
        return
    if len(findings) > max_findings:
        codes = Counter((f.severity, f.code) for f in findings)
        console.print("Findings by code: " + "; ".join(f"{code} ({sev}) {n}" for (sev, code), n in codes.most_common()))
    if console.width < WIDE:
        _print_blocks(findings[:max_findings], console)
    else:
        ft = Table(title=f"Findings ({len(findings)})", show_lines=False)
        for col in ("Severity", "Workbook", "Sheet", "Cell", "Ref", "Code", "Message"):
            ft.add_column(col, overflow="fold", ratio=4 if col == "Message" else None)
        for fd in findings[:max_findings]:
            sev = "[red]error[/red]" if fd.severity == "error" else "[yellow]warning[/yellow]"
            ft.add_row(sev, fd.workbook, fd.sheet or "", fd.cell or "", fd.ref or "", fd.code, fd.message)
        console.print(ft)
    if len(findings) > max_findings:
        console.print(f"... and {len(findings) - max_findings} more; use --json for all of them.")
