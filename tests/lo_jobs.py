"""Have a running LibreOffice open workbooks and save them, as an officer would, through UNO
(Debian's python3-uno).

Run by the system Python, not the project's: ``/usr/bin/python3 tests/lo_jobs.py PIPE JOBS``,
where PIPE names the pipe a LibreOffice started by ``tests/conftest.py`` listens on (one for
the test session, rather than a start of it, about 2 s of CPU, for every batch of files) and
JOBS is JSON, a list of ``{"src", "dst", "filter", "options", "ops"}``:

- ``filter``: the export filter the file is saved with, as LibreOffice names it (``calc8``
  for .ods, ``Calc MS Excel 2007 XML`` for .xlsx, ``calc_pdf_Export``, ``Text - txt - csv
  (StarCalc)``), with ``options`` its filter options (a CSV's separators) if any;
- ``ops``: edits made first, in order, each ``{"sheet": NAME, "do": "delete" | "insert",
  "row": N}`` (1-based rows; a protected sheet is unprotected first, as an officer must).
"""
import json
import os
import sys
import time

import uno
from com.sun.star.beans import PropertyValue


def prop(name, value):
    p = PropertyValue()
    p.Name = name
    p.Value = value
    return p


def connect(pipe, wait=60.0):
    """The desktop of the LibreOffice listening on ``pipe``, once it answers (it may still be
    starting)."""
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + wait
    while True:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def do(desktop, job):
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(job["src"])), "_blank", 0, (prop("Hidden", True),))
    try:
        for op in job.get("ops", ()):
            sheet = doc.Sheets.getByName(op["sheet"])
            if sheet.isProtected():
                sheet.unprotect("")
            if op["do"] == "delete":
                sheet.Rows.removeByIndex(op["row"] - 1, 1)
            elif op["do"] == "insert":
                sheet.Rows.insertByIndex(op["row"] - 1, 1)
        args = [prop("FilterName", job["filter"]), prop("Overwrite", True)]
        if job.get("options"):
            args.append(prop("FilterOptions", job["options"]))
        doc.storeToURL(uno.systemPathToFileUrl(os.path.abspath(job["dst"])), tuple(args))
    finally:
        doc.close(True)


def main():
    pipe, jobs = sys.argv[1], json.loads(sys.argv[2])
    desktop = connect(pipe)
    for job in jobs:
        do(desktop, job)


if __name__ == "__main__":
    # Ended at once when done: Python's shutdown with a UNO bridge still open can crash the
    # process after the work is done (a signal, nothing on stderr).
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)
