"""Rendering validation reports for people: rich tables on the console."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from derbyxl.findings import Report


def print_report(report: Report, console: Console, max_findings: int = 200) -> None:
    """A summary table per workbook, then the findings (errors first)."""
    table = Table(title="Returns checked", show_lines=False)
    for col in ("Workbook", "Portfolio", "Period", "Items", "Errors", "Warnings", "Result"):
        table.add_column(col, justify="right" if col in ("Items", "Errors", "Warnings") else "left")
    for fr in report.files:
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
    ft = Table(title=f"Findings ({len(findings)})", show_lines=False)
    for col in ("Severity", "Workbook", "Sheet", "Cell", "Ref", "Code", "Message"):
        ft.add_column(col, overflow="fold")
    for fd in findings[:max_findings]:
        sev = "[red]error[/red]" if fd.severity == "error" else "[yellow]warning[/yellow]"
        ft.add_row(sev, fd.workbook, fd.sheet or "", fd.cell or "", fd.ref or "", fd.code, fd.message)
    console.print(ft)
    if len(findings) > max_findings:
        console.print(f"... and {len(findings) - max_findings} more; use --json for all of them.")
