"""The pre-scan started early in a background process: it finds what the scan finds, the
report is the same with or without it, and a file changed after its scan is scanned again
(so a file swapped for one that would abort calamine never reaches calamine unscanned)."""

from __future__ import annotations

import os
import shutil

import pytest

from derbyxl import workers
from derbyxl.cache import file_key
from derbyxl.guard import DEFAULT_LIMITS, Limits, scan
from derbyxl.prescan import Prescan, display_names, expand_paths, sha256_of
from derbyxl.validate import validate_paths

from .conftest import Q4
from .hostile.test_hostile import HOSTILE, _build
from .test_scale import GOVERNANCE, _summary

pytestmark = pytest.mark.skipif(not workers.can_fork() or workers.default_workers() < 2, reason="the pre-scan runs only where it can fork onto another core")


@pytest.fixture
def mixed(returns_copy):
    """The nine good returns and every hostile file beside them."""
    good = (returns_copy / GOVERNANCE).read_bytes()
    for kind in HOSTILE:
        name, data = _build(kind, good)
        (returns_copy / f"{kind}-{name}").write_bytes(data)
    return returns_copy


def _started(files, **kw) -> Prescan:
    early = Prescan.start(files, **kw)
    assert early is not None
    assert early.wait(120), "the pre-scan did not finish"
    return early


def test_the_early_scan_finds_what_the_scan_finds(mixed):
    files = expand_paths([mixed])
    early = _started(files)
    for path, name in zip(files, display_names(files)):
        assert early.result_for(path, name) == scan(path, DEFAULT_LIMITS, workbook=name), name


def test_the_report_is_the_same_with_or_without_it(mixed, register):
    files = expand_paths([mixed])
    without = validate_paths(files, register, period=Q4)
    with_it = validate_paths(files, register, period=Q4, prescan=_started(files))
    assert _summary(with_it) == _summary(without)
    codes = {f.code for f in with_it.findings}
    assert set(HOSTILE.values()) <= codes


def test_a_file_changed_after_its_scan_is_scanned_again(returns_copy, register, good_dir):
    from .hostile.test_hostile import MEASURES_PART, rezip, with_cell

    files = expand_paths([returns_copy])
    early = _started(files)
    target = returns_copy / GOVERNANCE
    assert early.result_for(target, GOVERNANCE) is not None
    # Swapped, after the scan, for a file with a cell at XFD1048576 (calamine would abort).
    target.write_bytes(rezip((good_dir / GOVERNANCE).read_bytes(), {MEASURES_PART: with_cell("XFD1048576")}))
    assert early.result_for(target, GOVERNANCE) is None
    for n_workers in (1, 2):
        report = validate_paths(files, register, period=Q4, prescan=early, workers=n_workers)
        swapped = next(fr for fr in report.files if fr.workbook == GOVERNANCE)
        assert [f.code for f in swapped.findings] == ["sheet-too-large"]
        assert all(fr.valid for fr in report.files if fr.workbook != GOVERNANCE)


def test_stopped_early_it_gives_what_it_finished_and_the_rest_is_scanned(tmp_path, good_dir, register):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        for f in good_dir.glob("*.xlsx"):
            shutil.copy(f, folder / f"{i}-{f.name}")
    files = expand_paths([folder])
    early = Prescan.start(files)
    early.collect()  # straight away: little or nothing finished
    names = dict(zip(files, display_names(files)))
    for path in files:  # what it did finish is exactly what the scan finds
        got = early.result_for(path, names[path])
        assert got is None or got == scan(path, DEFAULT_LIMITS, workbook=names[path])
    report = validate_paths(files, register, period=Q4, prescan=early)
    without = validate_paths(files, register, period=Q4)
    assert len(report.files) == 54 and report.valid
    assert report.to_json() == without.to_json() and [fr.rows for fr in report.files] == [fr.rows for fr in without.files]


def test_a_record_cut_short_is_dropped(returns_copy):
    files = expand_paths([returns_copy])
    early = _started(files)
    # As if the process had been stopped half way through writing one more record.
    os.write(early._out.fileno(), (5000).to_bytes(4, "big") + b'["/elsewhere.xlsx",')
    assert set(early.collect()) == {str(f) for f in files}


def test_files_already_in_the_cache_are_not_scanned(returns_copy):
    files = expand_paths([returns_copy])
    skip = {file_key(sha256_of(files[0]), files[0]), file_key(sha256_of(files[1]), files[1]), sha256_of(files[2])}  # a bare SHA-256 is no key
    early = _started(files, skip=skip)
    assert set(early.collect()) == {str(f) for f in files[2:]}


def test_the_same_bytes_under_another_extension_are_scanned(returns_copy):
    files = expand_paths([returns_copy])
    renamed = returns_copy / "copy.xlsm"
    renamed.write_bytes(files[0].read_bytes())
    early = _started([*files, renamed], skip={file_key(sha256_of(files[0]), files[0])})
    assert str(renamed) in early.collect() and str(files[0]) not in early.collect()


def test_other_limits_set_the_early_scan_aside(returns_copy, register):
    files = expand_paths([returns_copy])
    early = _started(files)
    report = validate_paths(files, register, period=Q4, prescan=early, limits=Limits(max_rows=5))
    assert all([f.code for f in fr.findings] == ["sheet-too-large"] for fr in report.files)


def test_not_started_with_one_worker_or_one_file(returns_copy, monkeypatch):
    files = expand_paths([returns_copy])
    assert Prescan.start(files[:1]) is None
    monkeypatch.setenv(workers.WORKERS_ENV, "1")
    assert Prescan.start(files) is None


def test_the_commands_scan_early_only_what_is_not_cached(tmp_path, returns_copy, monkeypatch):
    from derbyxl.cli import main

    started = []
    real = Prescan.start.__func__

    def spy(cls, files, limits=DEFAULT_LIMITS, skip=frozenset()):
        early = real(cls, files, limits, skip)
        started.append((len(files), len(skip), early is not None))
        return early

    monkeypatch.setattr(Prescan, "start", classmethod(spy))
    history = tmp_path / "history.sqlite"
    common = ["--period", Q4.key]
    assert main(["validate", str(returns_copy), *common, "--history", str(history)]) == 0
    assert main(["validate", str(returns_copy), *common, "--history", str(history)]) == 0
    assert main(["consolidate", str(returns_copy), *common, "--out", str(tmp_path / "out"), "--history", str(history)]) == 0
    assert main(["consolidate", str(returns_copy), *common, "--out", str(tmp_path / "out"), "--no-cache"]) == 0
    # First nothing is known; then the nine files are in the cache, so no early scan at all;
    # --no-cache scans them all.
    assert started == [(9, 0, True), (9, 0, True)]
    # One file changed (a resubmission): the cache knows nine results, as many as there are
    # files, so no early scan either; the changed file is scanned by the workers as usual.
    from .faults import mutate

    changed = sorted(returns_copy.glob("*.xlsx"))[0]
    mutate(changed, changed, lambda wb: None)
    assert main(["validate", str(returns_copy), *common, "--history", str(history)]) == 0
    assert started == [(9, 0, True), (9, 0, True)]
    # Two more files than results known: the early scan starts, skipping the known ones.
    for extra in ("a", "b"):
        shutil.copy(changed, returns_copy / f"{extra}-{changed.name}")
    main(["validate", str(returns_copy), *common, "--history", str(history)])
    assert started[-1] == (11, 10, True)
    assert (tmp_path / "out" / f"master_{Q4.key}.xlsx").exists()


def test_no_temporary_folder_means_no_early_scan(returns_copy, register, monkeypatch):
    import tempfile

    def refuse(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    files = expand_paths([returns_copy])
    assert Prescan.start(files) is None
    assert validate_paths(files, register, period=Q4, prescan=None).valid
