"""Rendering validation reports for people: rich tables on the console."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from derbyxl.findings import Report

#: Above this many files the table lists only the files with errors, after a tally.
MAX_FILE_ROWS = 40


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
        for col in ("Workbook", "Portfolio", "Period", "Items", "Errors", "Warnings", "Result"):
            table.add_column(col, justify="right" if col in ("Items", "Errors", "Warnings") else "left")
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
    ft = Table(title=f"Findings ({len(findings)})", show_lines=False)
    for col in ("Severity", "Workbook", "Sheet", "Cell", "Ref", "Code", "Message"):
        ft.add_column(col, overflow="fold")
    for fd in findings[:max_findings]:
        sev = "[red]error[/red]" if fd.severity == "error" else "[yellow]warning[/yellow]"
        ft.add_row(sev, fd.workbook, fd.sheet or "", fd.cell or "", fd.ref or "", fd.code, fd.message)
    console.print(ft)
    if len(findings) > max_findings:
        console.print(f"... and {len(findings) - max_findings} more; use --json for all of them.")
