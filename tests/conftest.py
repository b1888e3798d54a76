"""Shared fixtures: the sample register, its templates, and returns filled with the council's
published Q4 2024/25 answers. Built once per session in temporary folders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from derbyxl.demo import fill_return, load_answers
from derbyxl.periods import Period
from derbyxl.register import load_register, sample_register_path
from derbyxl.template import write_templates

Q4 = Period.parse("2024-25-Q4")


@pytest.fixture(scope="session")
def register():
    return load_register(sample_register_path())


@pytest.fixture(scope="session")
def answers():
    return load_answers()


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory, register):
    out = tmp_path_factory.mktemp("templates")
    write_templates(register, Q4, out)
    return out


@pytest.fixture(scope="session")
def good_dir(tmp_path_factory, template_dir, answers):
    out = tmp_path_factory.mktemp("good")
    for t in sorted(template_dir.glob("*.xlsx")):
        fill_return(t, answers, out / t.name)
    return out


@pytest.fixture
def returns_copy(tmp_path, good_dir):
    """A fresh copy of the nine good returns that a test may add bad ones beside."""
    d = tmp_path / "returns"
    shutil.copytree(good_dir, d)
    return d


def template_path(template_dir: Path, portfolio_prefix: str) -> Path:
    return next(p for p in template_dir.glob("*.xlsx") if p.name.startswith(portfolio_prefix))


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert_to_pdf(path: Path, out_dir: Path) -> Path:
    pdf = libreoffice_convert(path, out_dir, "pdf", ".pdf")
    assert pdf.stat().st_size > 1000, f"LibreOffice produced no PDF for {path.name}"
    return pdf


def libreoffice_convert(path: Path, out_dir: Path, target: str, suffix: str) -> Path:
    """Open ``path`` in LibreOffice and save it into ``out_dir`` (``target`` as soffice's
    --convert-to takes it), as an officer using LibreOffice would."""
    exe = soffice()
    if not exe:
        pytest.skip("LibreOffice (soffice) is not installed")
    profile = out_dir / "lo-profile"
    subprocess.run(
        [exe, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", target, "--outdir", str(out_dir), str(path)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    out = out_dir / (path.stem + suffix)
    assert out.exists(), f"LibreOffice wrote nothing for {path.name}"
    return out
