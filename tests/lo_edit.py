"""Edit a workbook in a real LibreOffice, as an officer would, through UNO (Debian's python3-uno).

Run by the system Python, not the project's: ``/usr/bin/python3 tests/lo_edit.py JOBS`` where
JOBS is JSON, a list of ``[IN, OUT, OPS]``, all done by one start of LibreOffice; OPS is a list
of ``{"sheet": NAME, "do": "delete" | "insert", "row": N}`` (1-based rows, applied in order; a
protected sheet is unprotected first, as an officer must). Each file is saved as .xlsx (``Calc
MS Excel 2007 XML``) or, for an OUT ending .ods, as OpenDocument.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import uno
from com.sun.star.beans import PropertyValue

def prop(name, value):
    p = PropertyValue()
    p.Name = name
    p.Value = value
    return p

def main():
    jobs = json.loads(sys.argv[1])
    pipe = "derbyxl" + uuid.uuid4().hex
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--invisible", "--norestore", f"--accept=pipe,name={pipe};urp;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        for _ in range(200):
            try:
                ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except Exception:
                time.sleep(0.1)
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        for src, dst, ops in jobs:
            edit(desktop, src, dst, ops)
    finally:
        try:
            desktop.terminate()
        except Exception:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def edit(desktop, src, dst, ops):
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(src)), "_blank", 0, (prop("Hidden", True),))
    for op in ops:
        sheet = doc.Sheets.getByName(op["sheet"])
        if sheet.isProtected():
            sheet.unprotect("")
        if op["do"] == "delete":
            sheet.Rows.removeByIndex(op["row"] - 1, 1)
        elif op["do"] == "insert":
            sheet.Rows.insertByIndex(op["row"] - 1, 1)
    kind = "calc8" if dst.lower().endswith(".ods") else "Calc MS Excel 2007 XML"
    doc.storeToURL(uno.systemPathToFileUrl(os.path.abspath(dst)), (prop("FilterName", kind),))
    doc.close(True)


if __name__ == "__main__":
    main()
