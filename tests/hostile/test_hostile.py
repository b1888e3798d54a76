"""Hostile returns, built on the fly: each gets the exact finding code, nothing crashes, and the
good returns beside them still validate and consolidate."""

from __future__ import annotations

import io
import random
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derbyxl.consolidate import consolidate
from derbyxl.findings import CATALOGUE
from derbyxl.validate import validate_paths

from ..conftest import GOVERNANCE, Q4
from ..faults import mutate, set_input

from .corpus import CAUGHT_UNEXPECTED, GOV, HOSTILE, MEASURES_PART, _build, add_row, rezip, sst_claiming, with_cell  # noqa: F401


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_file_gets_its_code_and_the_rest_still_pass(kind, tmp_path, register, returns_copy):
    name, data = _build(kind, (returns_copy / GOV).read_bytes())
    (returns_copy / name).write_bytes(data)
    report = validate_paths([returns_copy], register, period=Q4)
    fr = next(f for f in report.files if f.workbook == name)
    assert [f.code for f in fr.findings if f.severity == "error"] == [HOSTILE[kind]], fr.findings
    assert all(f.message and f.hint for f in fr.findings)
    # Said by the pre-scan or the reader in words of their own, not by the last-resort catch
    # of an exception nobody expected ("it could not be read (TypeError: ...)").
    assert not any(CAUGHT_UNEXPECTED in f.message for f in fr.findings), fr.findings
    assert sum(f.valid for f in report.files) == 9
    assert (returns_copy / name).read_bytes() == data


def test_hostile_files_do_not_stop_consolidation(tmp_path, register, returns_copy):
    good = (returns_copy / GOV).read_bytes()
    for kind in ("cell-at-XFD1048576", "entity-bomb", "truncated-zip", "renamed-pdf"):
        name, data = _build(kind, good)
        (returns_copy / name).write_bytes(data)
    result = consolidate(returns_copy, register, Q4, tmp_path / "out")
    assert result.master and result.missing == []
    assert sum(1 for s in result.submissions if not s.report.valid) == 4


def _warning_case(returns_copy, change):
    mutate(returns_copy / GOV, returns_copy / GOV, change)


def test_external_link_is_reported_not_followed(tmp_path, register, returns_copy):
    data = rezip((returns_copy / GOV).read_bytes(), {}, add={"xl/externalLinks/externalLink1.xml": b'<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"/>'})
    (returns_copy / GOV).write_bytes(data)
    fr = next(f for f in validate_paths([returns_copy], register, period=Q4).files if f.workbook == GOV)
    assert fr.valid and [f.code for f in fr.findings] == ["external-link"]


def test_hidden_sheet_is_read_with_a_warning(register, returns_copy):
    _warning_case(returns_copy, lambda wb: setattr(wb["Risks"], "sheet_state", "hidden"))
    fr = next(f for f in validate_paths([returns_copy], register, period=Q4).files if f.workbook == GOV)
    assert fr.valid and [f.code for f in fr.findings] == ["hidden-sheet"]


def test_merged_cells_over_inputs(register, returns_copy):
    _warning_case(returns_copy, lambda wb: wb["Measures"].merge_cells("G2:G3"))
    fr = next(f for f in validate_paths([returns_copy], register, period=Q4).files if f.workbook == GOV)
    assert ("Measures", "G2", "merged-cells") in [(f.sheet, f.cell, f.code) for f in fr.findings]
    assert not fr.valid


@pytest.mark.parametrize("error", [b"#REF!", b"#DIV/0!"])
def test_error_values_in_input_cells(register, returns_copy, error):
    def change(xml):
        start = xml.index(b'<c r="G2"')
        end = xml.index(b"</c>", start) + 4
        return xml[:start] + b'<c r="G2" t="e"><v>' + error + b"</v></c>" + xml[end:]
    (returns_copy / GOV).write_bytes(rezip((returns_copy / GOV).read_bytes(), {MEASURES_PART: change}))
    fr = next(f for f in validate_paths([returns_copy], register, period=Q4).files if f.workbook == GOV)
    assert [(f.sheet, f.cell, f.code) for f in fr.findings if f.severity == "error"] == [("Measures", "G2", "excel-error")]


def test_unicode_right_to_left_and_long_text(tmp_path, register, returns_copy):
    rtl = "\u0627\u0644\u0645\u0624\u0634\u0631 \u062a\u062d\u0633\u0646 \u2067RTL\u2069 \U0001F4C8 na\u00efve"
    long_text = "Slippage explained. " * 300
    def change(wb):
        set_input(wb, "Measures", "CM PM03", "Commentary", rtl)
        set_input(wb, "Risks", "SR7_CR6", "Commentary", long_text)
    _warning_case(returns_copy, change)
    report = validate_paths([returns_copy], register, period=Q4)
    fr = next(f for f in report.files if f.workbook == GOV)
    assert fr.valid and [f.code for f in fr.findings] == ["text-too-long"]
    result = consolidate(returns_copy, register, Q4, tmp_path / "out")
    rows = {r["ref"]: r for r in result.rows}
    assert rows["CM PM03"]["commentary"] == rtl and rows["SR7_CR6"]["commentary"] == long_text.strip()


def test_file_names_cannot_escape_the_annotation_folder(tmp_path, register, returns_copy):
    from derbyxl.annotate import annotate_report

    odd = returns_copy / "..%2F..%2Fevil name;rm -rf.xlsx"
    mutate(returns_copy / GOV, odd, lambda wb: set_input(wb, "Measures", "CM PM03", "Actual", "lots"))
    out = tmp_path / "annotated"
    written = annotate_report(validate_paths([odd], register, period=Q4), out)
    assert written and all(p.resolve().parent == out.resolve() for p in written)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), where=st.sampled_from(["zip", "xml"]), flips=st.integers(1, 40))
def test_fuzzed_returns_always_end_with_a_report(good_dir, register, tmp_path_factory, seed, where, flips):
    rnd = random.Random(seed)
    good = (good_dir / GOV).read_bytes()
    if where == "zip":
        data = bytearray(good)
        for _ in range(flips):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        data = bytes(data)
    else:
        part = rnd.choice([MEASURES_PART, "xl/workbook.xml", "xl/sharedStrings.xml", "xl/worksheets/sheet3.xml", "[Content_Types].xml"])
        def garble(xml):
            b = bytearray(xml)
            for _ in range(flips):
                b[rnd.randrange(len(b))] = rnd.choice(b"<>\"'&=/ 0123456789ABCXFD\x00\xff")
            return bytes(b)
        data = rezip(good, {part: garble})
    d = tmp_path_factory.mktemp("fuzz")
    (d / GOV).write_bytes(data)
    report = validate_paths([d], register, period=Q4)
    assert len(report.files) == 1
    fr = report.files[0]
    # Either the damage was harmless and all nine items were read, or it is reported in words.
    if fr.valid:
        assert len(fr.rows) == 9
    else:
        assert all(f.code in CATALOGUE and f.message and f.hint for f in fr.findings)
        assert not any(CAUGHT_UNEXPECTED in f.message for f in fr.findings), fr.findings


def test_the_count_of_shared_strings_is_read_from_the_root_alone():
    from derbyxl.guard import claimed_strings

    assert claimed_strings(sst_claiming(b'uniqueCount="7"')) == 7
    assert claimed_strings(sst_claiming(b"")) is None  # none declared (only count="2")
    # Comments and processing instructions before the root are passed over, not read.
    before = b'<?mso-application progid="Excel.Sheet"?>\n  <!-- <sst uniqueCount="3"> -->\n'
    assert claimed_strings(sst_claiming(b'uniqueCount="+12"', before)) == 12
    assert claimed_strings(sst_claiming(b"x:uniqueCount='&#52;0'")) == 40
    # A root of another name, or a count that is no number, declares nothing.
    assert claimed_strings(b'<table uniqueCount="9"/>') is None
    assert claimed_strings(sst_claiming(b'uniqueCount="many"')) is None
    assert claimed_strings(b"") is None and claimed_strings(b"<!-- unfinished") is None


def test_a_count_of_shared_strings_merely_overstated_is_no_finding(register, returns_copy):
    # Some writers overstate the count; calamine reserves a little too much room and reads on.
    path = returns_copy / GOV
    path.write_bytes(rezip(path.read_bytes(), {"xl/sharedStrings.xml": sst_claiming(b'uniqueCount="100000"')}))
    report = validate_paths([path], register, period=Q4)
    assert report.files[0].valid and len(report.files[0].rows) == 9


def _renamed(src: bytes, rename) -> bytes:
    """A copy of a zip with every part renamed by ``rename(name)`` and its bytes changed by
    ``rename`` too when it is given bytes (for the references inside parts)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(rename(info.filename), rename(zin.read(info.filename)))
    return out.getvalue()


def test_a_workbook_stored_unusually_is_said_exactly(register, returns_copy):
    # Excel finds the workbook through _rels/.rels; some writers store parts with backslashes
    # or the workbook under another name. The reader cannot read those: the message says
    # exactly what is unusual and what to do, not only "xl/workbook.xml is missing".
    good = (returns_copy / GOVERNANCE).read_bytes()
    backslashes = _renamed(good, lambda x: x.replace("/", "\\") if isinstance(x, str) else x)
    moved = _renamed(good, lambda x: x.replace("xl/workbook.xml", "xl/main.xml") if isinstance(x, str) else x.replace(b"/xl/workbook.xml", b"/xl/main.xml").replace(b'Target="xl/workbook.xml"', b'Target="xl/main.xml"'))
    gone = rezip(good, {"xl/workbook.xml": None})
    expected = {
        "backslashes.xlsx": (backslashes, "stored with backslashes in their paths (xl\\"),
        "moved.xlsx": (moved, "its workbook part is xl/main.xml, not xl/workbook.xml where Excel writes it"),
        "gone.xlsx": (gone, "its relationships name the workbook part xl/workbook.xml, which is not in the file"),
    }
    for name, (data, _) in expected.items():
        (returns_copy / name).write_bytes(data)
    report = validate_paths([returns_copy], register, period=Q4)
    for name, (_, words) in expected.items():
        fr = next(f for f in report.files if f.workbook == name)
        assert [f.code for f in fr.findings] == ["missing-part"], name
        assert words in fr.findings[0].message and "save it again as Excel Workbook (.xlsx)" in fr.findings[0].message, fr.findings[0].message
    assert sum(fr.valid for fr in report.files) == 9
