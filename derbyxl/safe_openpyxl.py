"""openpyxl, guaranteed to parse XML through defusedxml.

openpyxl switches to defusedxml on its own when the package is importable and the environment
variable ``OPENPYXL_DEFUSEDXML`` is not ``False``. Returns are untrusted, so derbyxl refuses to
run with that protection off rather than silently parse entity bombs with the standard library.
"""

from __future__ import annotations

import os

os.environ["OPENPYXL_DEFUSEDXML"] = "True"

import openpyxl  # noqa: E402
from openpyxl import DEFUSEDXML  # noqa: E402

if not DEFUSEDXML:  # pragma: no cover - only when defusedxml is missing or openpyxl imported early with it off
    raise ImportError("derbyxl needs defusedxml so that openpyxl parses untrusted XML safely")

load_workbook = openpyxl.load_workbook
