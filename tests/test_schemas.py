"""The pandera schemas come from the sheet definitions: a column added to a kind in the spec
is checked, with its own type, choices, range and finding codes, without touching the schemas."""

from __future__ import annotations

import dataclasses

import pandera.pandas as pa
import pytest

from derbyxl import schemas
from derbyxl.spec import SHEET_BY_KIND, Column


def test_every_checked_input_of_the_spec_is_a_schema_column():
    for kind, spec in SHEET_BY_KIND.items():
        schema = schemas.schema_for(kind)
        for col in spec.inputs:
            if col.dtype == "text":
                assert col.name not in schema.columns
                continue
            column = schema.columns[col.name]
            assert column.nullable is (not col.required), (kind, col.key)
            if col.choices:
                assert any(list(col.choices) == c.statistics.get("allowed_values") for c in column.checks), (kind, col.key)
            if col.minimum is not None:
                assert any(c.statistics.get("min_value") == col.minimum and c.statistics.get("max_value") == col.maximum for c in column.checks)


def test_a_column_added_to_a_kind_is_checked_with_its_own_codes():
    risks = SHEET_BY_KIND["risk"]
    velocity = Column("Velocity", "velocity", role="input", dtype="whole", minimum=1, maximum=3, required=True, missing="missing-risk-rating", invalid="invalid-risk-rating")
    spec = dataclasses.replace(risks, columns=(*risks.columns, velocity))
    schema = schemas._schema(spec)
    rows = [
        {"ref": "R1", "likelihood": 2.0, "impact": 3.0, "velocity": 2.0},
        {"ref": "R2", "likelihood": 2.0, "impact": 3.0, "velocity": 5.0},
        {"ref": "R3", "likelihood": 2.0, "impact": 3.0, "velocity": None},
    ]
    frame = schemas._frame(spec, rows, {})
    assert list(frame.columns) == ["likelihood", "impact", "velocity"]
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schema.validate(frame, lazy=True)
    found = {}
    for case in caught.value.failure_cases.itertuples(index=False):
        code, col = schemas._code_for(spec, case.schema_context, case.column, str(case.check))
        found[int(case.index)] = (code, col.key)
    assert found == {1: ("invalid-risk-rating", "velocity"), 2: ("missing-risk-rating", "velocity")}
    assert schemas._value_message("invalid-risk-rating", rows[1], velocity, None) == "Velocity is 5"
    assert schemas._value_message("missing-risk-rating", rows[2], velocity, None) == "Velocity is empty"


def test_records_checked_a_chunk_at_a_time_give_the_same_findings(register, returns_copy, monkeypatch):
    # Values pandera finds wrong in several returns and kinds, checked all at once and three
    # records at a time: the same findings, on the same cells.
    from derbyxl.validate import validate_paths

    from .conftest import GOVERNANCE, Q4
    from .faults import mutate, set_input

    children = "Children-Young-People-and-Skills_2024-25-Q4.xlsx"
    changes = {
        children: [("Measures", "EHCS PM29", "Actual", 56), ("Actions", "GW 04", "Status", "Done")],
        GOVERNANCE: [("Risks", "SR7_CR6", "Likelihood", 5), ("Measures", "CM PM10", "Actual", None)],
    }
    for name, edits in changes.items():
        path = returns_copy / name
        mutate(path, path, lambda wb, edits=edits: [set_input(wb, *edit) for edit in edits])

    def findings():
        report = validate_paths([returns_copy], register, period=Q4)
        return sorted((f.workbook, f.sheet, f.cell, f.code, f.message) for f in report.findings)

    whole = findings()
    assert {code for *_, code, _ in whole} >= {"percent-as-whole", "invalid-status", "invalid-risk-rating", "missing-actual"}
    monkeypatch.setattr(schemas, "CHUNK", 3)
    assert findings() == whole
