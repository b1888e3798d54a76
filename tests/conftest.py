"""Shared fixtures: the sample register, its templates, and returns filled with the council's
published Q4 2024/25 answers. Built once per session in temporary folders."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from derbyxl.periods import Period

Q4 = Period.parse("2024-25-Q4")
#: The sample return most tests change.
GOVERNANCE = "Governance-and-Finance_2024-25-Q4.xlsx"
# Where the council's published Q4 2024/25 colour differs from the KEY's (a tolerance of its own).
KEY_EXCEPTIONS = {
    "C PM24": ("Blue", "Green", "18 against 15 is 20% better than target, Blue by the KEY; published Green"),
    "CS 01": ("Green", "Amber", "535kg against 530kg is 0.9% worse, Green by the KEY; the council applies a tighter tolerance"),
    "YAH PM08": ("Green", "Amber", "216 against 220 is 1.8% short, Green by the KEY; the council applies a tighter tolerance"),
    "ASC Local 2a2(ii)": ("Green", "Blue", "546.4 against 565 (lower is better) is 3.3% better, Green by the KEY; published Blue"),
}


def run(*args, cwd=None):
    """The command line as an officer runs it, in this process: ``derbyxl.cli.main`` given
    the arguments, from ``cwd``, its output captured, returned as a finished process
    (returncode, stdout, stderr). About 0.2 s a command rather than 1.5 s for a new
    interpreter; what only a process of its own shows (the console's width from COLUMNS, a
    password on stdin, the ``python -m derbyxl.cli`` entry itself) is tested with
    :func:`run_process`. The environment and working folder are put back afterwards."""
    from derbyxl.cli import main

    argv = [str(a) for a in args]
    out, err, environ, here = io.StringIO(), io.StringIO(), dict(os.environ), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)
    return subprocess.CompletedProcess(["derbyxl", *argv], code, out.getvalue(), err.getvalue())


def run_process(*args, cwd=None, env=None, input=None):
    """The command line in a process of its own (``python -m derbyxl.cli``)."""
    return subprocess.run([sys.executable, "-m", "derbyxl.cli", *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env, input=input)


@pytest.fixture(scope="session", autouse=True)
def _one_worker_per_command():
    """The tests already run on every core at once (pytest-xdist), so the commands they run
    each read with one worker process, not one per core: two workers per command doubled
    the worker processes started (some 320) for no gain, 8 s of CPU in a run of ``make
    test`` (bench/README.md, eleventh session). The runner's, the portal's and the scale
    tests that need more ask for them by number."""
    from derbyxl.runner import WORKERS_ENV

    os.environ.setdefault(WORKERS_ENV, "1")


@pytest.fixture(scope="session", autouse=True)
def _cache_home(tmp_path_factory):
    """The user's cache folder (where commands keep per-file results when no --history is
    named) is a temporary one for the tests and the commands they run."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))


# The fixtures import what they use: this file is also loaded by pytest-xdist's controller,
# which starts the test processes only once it has (openpyxl and xlsxwriter: 0.25 s).


@pytest.fixture(scope="session")
def register():
    from derbyxl.register import load_register, sample_register_path

    return load_register(sample_register_path())


@pytest.fixture(scope="session")
def answers():
    from derbyxl.demo import load_answers

    return load_answers()


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory, register):
    from derbyxl.template import write_templates

    out = tmp_path_factory.mktemp("templates")
    write_templates(register, Q4, out)
    return out


@pytest.fixture(scope="session")
def good_dir(tmp_path_factory, template_dir, answers):
    from derbyxl.demo import fill_return

    out = tmp_path_factory.mktemp("good")
    for t in sorted(template_dir.glob("*.xlsx")):
        fill_return(t, answers, out / t.name)
    return out


@pytest.fixture
def files_read(monkeypatch) -> list[str]:
    """The names of the files handed to the worker processes to be read, from now on (files
    whose results come from the cache are not)."""
    import derbyxl.validate as validate_module

    seen: list[str] = []
    real = validate_module._stage_all

    def counting(tasks, *args, **kwargs):
        seen.extend(name for _, _, name in tasks)
        return real(tasks, *args, **kwargs)

    monkeypatch.setattr(validate_module, "_stage_all", counting)
    return seen


@pytest.fixture
def returns_copy(tmp_path, good_dir):
    """A fresh copy of the nine good returns that a test may add bad ones beside."""
    d = tmp_path / "returns"
    shutil.copytree(good_dir, d)
    return d


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A folder that ``make(folder)`` fills, made once for the whole run even when
    pytest-xdist runs the tests in several processes, each of which would otherwise make its
    own (pytest-xdist's recipe for session fixtures run once): the first process to ask makes
    it in the run's shared temporary folder, holding a file lock; the others wait for it and
    use what it made. For what costs seconds of LibreOffice to make."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: its own temporary folder
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    folder, made = root / name, root / name / ".made"
    with FileLock(str(root / f"{name}.lock")):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            made.touch()
    return folder


@pytest.fixture(scope="session")
def saved_by_libreoffice(tmp_path_factory, template_dir, good_dir) -> dict[str, tuple[Path, Path]]:
    """Workbooks opened in LibreOffice and saved again as .xlsx (it rewrites every part: its
    own styles, shared strings, the very hidden stamp): by name, the workbook as derbyxl or
    openpyxl wrote it and as LibreOffice saved it. ``template`` is Governance's template;
    ``return`` its filled return with "about 7" in LPD PM06's Actual."""
    from .faults import mutate, set_input

    def make(folder: Path) -> None:
        (folder / "before").mkdir()
        shutil.copyfile(template_path(template_dir, "Governance"), folder / "before" / "template.xlsx")
        mutate(good_dir / GOVERNANCE, folder / "before" / GOVERNANCE, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", "about 7"))
        libreoffice_convert(sorted((folder / "before").iterdir()), folder / "after", "Calc MS Excel 2007 XML", ".xlsx")

    folder = made_once(tmp_path_factory, "saved-by-libreoffice", make)
    return {name: (folder / "before" / file, folder / "after" / file) for name, file in (("template", "template.xlsx"), ("return", GOVERNANCE))}


def template_path(template_dir: Path, portfolio_prefix: str) -> Path:
    return next(p for p in template_dir.glob("*.xlsx") if p.name.startswith(portfolio_prefix))


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


#: This test process's LibreOffice (:func:`_libreoffice`): its process, pipe and profile.
_OFFICE: dict = {}
_UNO_PYTHON = Path("/usr/bin/python3")


def _libreoffice() -> str:
    """The pipe name of this test process's LibreOffice, started headless at the first call
    (and again if it has stopped), with a profile of its own: one start for the session
    rather than one for each batch of files (a start costs about 2 s of CPU). It is stopped
    when the session ends (:func:`pytest_sessionfinish`)."""
    exe = soffice()
    if not exe or not _UNO_PYTHON.exists():
        pytest.skip("LibreOffice (soffice) and Debian's python3-uno are not installed")
    if "uno" not in _OFFICE:
        _OFFICE["uno"] = subprocess.run([str(_UNO_PYTHON), "-c", "import uno"], capture_output=True).returncode == 0
    if not _OFFICE["uno"]:
        pytest.skip("Debian's python3-uno is not installed")
    proc = _OFFICE.get("proc")
    if proc is None or proc.poll() is not None:
        _stop_libreoffice()
        profile = Path(tempfile.mkdtemp(prefix="derbyxl-tests-lo-"))
        pipe = f"derbyxl-tests-{os.getpid()}-{profile.name}"
        proc = subprocess.Popen(
            [exe, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault", f"--accept=pipe,name={pipe};urp;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with every process it starts
        )
        _OFFICE.update(proc=proc, pipe=pipe, profile=profile)
    return _OFFICE["pipe"]


def _stop_libreoffice() -> None:
    proc, profile = _OFFICE.pop("proc", None), _OFFICE.pop("profile", None)
    if proc is not None:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    if profile is not None:
        shutil.rmtree(profile, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    _stop_libreoffice()


def pytest_unconfigure(config):
    """The test process ends next: its objects are left to the system rather than walked
    once more by the garbage collector as Python shuts down (0.9 s at the end of each
    run with two test processes; bench/README.md, eleventh session)."""
    import gc

    gc.freeze()


def libreoffice_jobs(jobs: list[dict]) -> None:
    """Have this session's LibreOffice open each job's ``src``, make its edits and save it
    to ``dst`` with its export filter (``tests/lo_jobs.py`` says what a job holds), as an
    officer using LibreOffice would."""
    import json

    def attempt() -> subprocess.CompletedProcess:
        return subprocess.run([str(_UNO_PYTHON), str(Path(__file__).parent / "lo_jobs.py"), _libreoffice(), json.dumps(jobs)], capture_output=True, text=True, timeout=600)

    done = attempt()
    if done.returncode != 0 and _OFFICE["proc"].poll() is not None:
        # LibreOffice itself stopped: once more with a new one (a file that stops it stops
        # the second one too, and fails here).
        first, done = done, attempt()
        assert done.returncode == 0, f"LibreOffice stopped twice (exit {first.returncode}, then {done.returncode}): {done.stderr[-2000:]}"
    assert done.returncode == 0, f"LibreOffice could not do it (exit {done.returncode}; LibreOffice {'running' if _OFFICE['proc'].poll() is None else 'stopped'}): {done.stderr[-2000:]}"
    for job in jobs:
        assert Path(job["dst"]).exists(), f"LibreOffice wrote nothing for {Path(job['src']).name}"


def libreoffice_convert(paths: list[Path], out_dir: Path, export_filter: str, suffix: str, options: str | None = None) -> list[Path]:
    """Open each of ``paths`` in LibreOffice and save it into ``out_dir`` with
    ``export_filter`` (and its ``options``) under its own name with ``suffix``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [out_dir / (path.stem + suffix) for path in paths]
    libreoffice_jobs([{"src": str(path), "dst": str(out), "filter": export_filter, "options": options} for path, out in zip(paths, made)])
    return made


def libreoffice_edit(*jobs: tuple[Path, Path, list[dict]]) -> list[Path]:
    """Open each ``src`` in LibreOffice, delete or insert rows as an officer would, and save
    it to ``dst`` (as .xlsx, or OpenDocument for a ``dst`` ending .ods): jobs of (src, dst,
    ops). Returns the ``dst`` paths."""
    libreoffice_jobs([{"src": str(src), "dst": str(dst), "filter": "calc8" if dst.suffix.lower() == ".ods" else "Calc MS Excel 2007 XML", "ops": ops} for src, dst, ops in jobs])
    return [dst for _, dst, _ in jobs]


#: A council's own register, small: three portfolios of its own naming, a cumulative measure
#: profiled by quarter (council tax collected), last year's outturns for 2024/25 Q4.
COUNCIL_HEADER = ["Ref", "Kind", "Description", "Portfolio", "Theme", "Unit", "Polarity", "Target", "Target Q1", "Target Q2", "Target Q3", "Target Q4", "Previous actual", "Previous period", "Lead officer", "Email"]
COUNCIL_ROWS = [
    ["AH 01", "measure", "Care reviews done on time", "Adults and Health", "Thriving People", "percent", "higher", "90%", "", "", "", "", "85%", "2024/25 Q4", "Ann Lee", "ann@example.gov.uk"],
    ["AH 02", "measure", "Days to arrange home care", "Adults and Health", "Thriving People", "days", "lower", "10", "", "", "", "", "12", "2024/25 Q4", "Ann Lee", "ann@example.gov.uk"],
    ["AH A1", "action", "Open the new day centre", "Adults and Health", "Thriving People", "", "", "", "", "", "", "", "", "", "Ann Lee", "ann@example.gov.uk"],
    ["PL 01", "measure", "Residual waste per household (cumulative)", "Place", "Green Place", "kg", "lower", "440", "110", "220", "330", "440", "452", "2024/25 Q4", "Raj Patel", "raj@example.gov.uk"],
    ["PL 02", "measure", "New homes completed", "Place", "Green Place", "number", "higher", "", "", "", "", "", "610", "2024/25 Q4", "Raj Patel", "raj@example.gov.uk"],
    ["PL P1", "project", "Station quarter regeneration", "Place", "Green Place", "", "", "", "", "", "", "", "", "", "Raj Patel", "raj@example.gov.uk"],
    ["RS 01", "measure", "Council tax collected (cumulative)", "Resources", "Well Run Council", "percent", "higher", "95%", "28%", "55%", "82%", "", "96%", "2024/25 Q4", "Sam Cole", "sam@example.gov.uk"],
    ["RS 02", "measure", "Savings delivered", "Resources", "Well Run Council", "money", "higher", "£1.2m", "", "", "", "", "£1,150,000", "2024/25 Q4", "Sam Cole", "sam@example.gov.uk"],
    ["RS A1", "action", "Move payroll to the new system", "Resources", "Well Run Council", "", "", "", "", "", "", "", "", "", "Sam Cole", "sam@example.gov.uk"],
    ["RS R1", "risk", "Funding gap in the medium term", "Resources", "Well Run Council", "", "", "", "", "", "", "", "", "", "Sam Cole", "sam@example.gov.uk"],
]


def write_council_register(path: Path, rows: list[list] | None = None, header: list[str] | None = None, *, title: bool = False) -> Path:
    """Write the council register as CSV (UTF-8), with a title and a blank row on top if asked."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if title:
            w.writerow(["Performance register 2025/26"])
            w.writerow([])
        w.writerow(header or COUNCIL_HEADER)
        w.writerows(rows if rows is not None else COUNCIL_ROWS)
    return path


def council_answers(**actuals) -> dict[str, dict]:
    """Answers for every item of the council register: on-track statuses, given actuals
    (by ref with spaces as underscores: AH_01=0.9), and commentary everywhere."""
    answers = {
        "AH A1": {"status": "On track"},
        "PL P1": {"status": "Green"},
        "RS A1": {"status": "On track"},
        "RS R1": {"likelihood": 2, "impact": 3},
    }
    for key, value in actuals.items():
        answers[key.replace("_", " ")] = {"actual": value}
    for ans in answers.values():
        ans["commentary"] = "Progress as planned; see the service plan."
    return answers


def summary_rows(ws) -> dict[str, dict]:
    """The Summary sheet's group tables read back by their headers: {row label: {header: value}}
    for every theme and portfolio row, and "All" (the total row, the same in both tables). Each
    "out of" column is named after the percentage it stands beside: "out of (% actions ...)"."""
    out: dict[str, dict] = {}
    header = None
    for row in ws.iter_rows(values_only=True):
        if row and row[0] in ("Theme", "Portfolio"):
            header, before = [row[0]], None
            for h in row[1:]:
                header.append(f"out of ({before})" if h == "out of" else h)
                before = h
            continue
        if header is not None and row and row[0]:
            out[row[0]] = dict(zip(header[1:], row[1:]))
            if row[0] == "All":
                header = None
    return out


def render_pngs(out_dir: Path, *books: tuple[Path, int, int]) -> list[Path]:
    """Workbooks as a person sees them printed, (path, first page, last page) each: LibreOffice
    makes the PDFs, pdftoppm the PNG pages (the tests write them; look at
    them when the layout changes)."""
    pdfs = libreoffice_convert([path for path, _, _ in books], out_dir, "calc_pdf_Export", ".pdf")
    exe = shutil.which("pdftoppm")
    if not exe:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    pages = []
    for (path, first, last), pdf in zip(books, pdfs):
        assert pdf.stat().st_size > 1000, f"LibreOffice produced no PDF for {path.name}"
        prefix = out_dir / path.stem
        subprocess.run([exe, "-png", "-r", "60", "-f", str(first), "-l", str(last), str(pdf), str(prefix)], check=True, capture_output=True, timeout=120)
        mine = sorted(out_dir.glob(f"{path.stem}-*.png"))
        assert mine and all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 5000 for p in mine)
        pages += mine
    return pages


def pytest_collection_modifyitems(config, items):
    """The slow tiers first (LibreOffice, the browser, the benchmark: seconds each), so that
    when the tests run on several cores the quick ones fill in around them rather than
    leaving one core with a slow test at the end. The order is otherwise the files'."""
    slow = ("bench", "soffice", "browser")
    items.sort(key=lambda item: 0 if any(item.get_closest_marker(m) for m in slow) else 1)
