"""The returns portal: what a lead and the team can do, what nobody else can, and how it
holds up. Security tests go through Starlette's test client; the walk-through runs in a real
headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) against the
portal served by uvicorn on loopback, and writes a screenshot of each page."""

from __future__ import annotations

import csv
import io
import re
import shutil
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from derbyxl.demo import fill_return, load_answers  # noqa: E402
from derbyxl.portal.app import MAX_UPLOAD_BYTES, create_app  # noqa: E402

from .conftest import GOVERNANCE, Q4  # noqa: E402
from .faults import mutate, set_input  # noqa: E402
from .hostile.corpus import HOSTILE, _build  # noqa: E402

GOV = "Governance and Finance"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _quick_hashes(monkeypatch):
    """argon2id at its lowest cost in this process (0.1 s a hash otherwise, paid by every
    sign-in): what is tested is the portal's behaviour, not argon2's cost. The commands run
    as processes of their own below hash with argon2's defaults."""
    from derbyxl.portal.store import Store

    monkeypatch.setattr(Store, "HASHER_OPTIONS", {"time_cost": 1, "memory_cost": 8, "parallelism": 1})


@pytest.fixture
def portal_app(tmp_path, register):
    app = create_app(tmp_path / "portal", register, Q4, workers=2)
    app.state.portal.store.add_account("alex", PASSWORD)
    yield app
    app.state.portal.runner.close()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _upload(client, token: str, name: str, data: bytes, csrf: str | None = None):
    csrf = csrf if csrf is not None else _csrf(client.get(f"/r/{token}").text)
    return client.post(f"/r/{token}/upload", data={"csrf": csrf}, files={"return": (name, data, "application/octet-stream")})


def _signed_in(client) -> str:
    r = client.post("/team/login", data={"csrf": _csrf(client.get("/team/login").text), "name": "alex", "password": PASSWORD})
    assert r.status_code == 200 and "who has returned what" in r.text
    return _csrf(r.text)


# -- what a lead's link opens, and what it does not --


def test_a_link_opens_its_portfolio_only(portal_app, good_dir):
    store = portal_app.state.portal.store
    gov, other = store.issue_link(GOV, Q4.key), store.issue_link("Health and Adult Care", Q4.key)
    with TestClient(portal_app) as c:
        r = _upload(c, gov, "mine.xlsx", (good_dir / GOVERNANCE).read_bytes())
        upload_id = int(r.url.params["upload"])
        assert r.status_code == 200 and "Valid" in r.text
        # The other portfolio's link sees nothing of it: not its uploads, not its annotated copy.
        page = c.get(f"/r/{other}")
        assert page.status_code == 200 and "mine.xlsx" not in page.text and GOV not in page.text
        assert c.get(f"/r/{other}?upload={upload_id}").text.count("mine.xlsx") == 0
        assert c.get(f"/r/{other}/annotated/{upload_id}").status_code == 404
        # A made-up or damaged token opens nothing, and neither uploads.
        for bad in ("x" * 43, gov[:-1] + ("A" if gov[-1] != "A" else "B")):
            assert c.get(f"/r/{bad}").status_code == 403
            assert c.post(f"/r/{bad}/upload", data={"csrf": "x"}, files={"return": ("a.xlsx", b"PK", "x")}).status_code == 403
        # A path that climbs out of the link reaches no file of the portal's folder.
        for climb in ("..%2F..%2Fportal.sqlite", "../../portal.sqlite", f"{gov}/../../portal.key", "%2e%2e/%2e%2e/uploads"):
            r = c.get(f"/r/{climb}")
            assert r.status_code in (403, 404) and b"SQLite format" not in r.content and len(r.content) < 20_000
        # Another portfolio's return through this link is not taken as this portfolio's.
        r = _upload(c, other, "theirs.xlsx", (good_dir / GOVERNANCE).read_bytes())
        assert "other-portfolio" not in r.text  # codes are not shown; the message is
        assert "this is the return for Governance and Finance; this page is for Health and Adult Care" in r.text
        latest = portal_app.state.portal.store.latest(Q4.key)
        assert latest["Health and Adult Care"].valid is False and latest[GOV].valid is True


def test_a_revoked_link_fails(portal_app):
    store = portal_app.state.portal.store
    token = store.issue_link(GOV, Q4.key)
    with TestClient(portal_app) as c:
        assert c.get(f"/r/{token}").status_code == 200
        (link,) = store.links(Q4.key)
        store.revoke(link.id)
        r = c.get(f"/r/{token}")
        assert r.status_code == 403 and "ask them for a new one" in r.text and "Traceback" not in r.text


def test_uploads_are_stored_by_hash_and_names_are_only_text(portal_app, good_dir):
    portal = portal_app.state.portal
    token = portal.store.issue_link(GOV, Q4.key)
    data = (good_dir / GOVERNANCE).read_bytes()
    names = ["../../../etc/passwd.xlsx", "..\\..\\portal.sqlite", "/abs/path.xlsx", '"><img src=x onerror=alert(1)>.xlsx', "résumé – Q4 (final) ✓.xlsx", "CON.xlsx", "a" * 300 + ".xlsx"]
    with TestClient(portal_app) as c:
        for name in names:
            r = _upload(c, token, name, data)
            assert r.status_code == 200
            if "<img" in name:
                assert "<img" not in r.text and "&gt;&lt;img src=x onerror=alert(1)&gt;.xlsx" in r.text
    stored = sorted(p.name for p in portal.uploads_dir.iterdir())
    sha = __import__("hashlib").sha256(data).hexdigest()
    assert stored == [sha, sha + ".xlsx"]  # by hash, with the extension when it is a plain one
    assert not (portal.home.parent / "etc").exists() and (portal.home / "portal.sqlite").stat().st_size > 0
    # Kept as sent (the client sends a quote in a file name as %22).
    assert {u.original_name for u in portal.store.uploads(Q4.key)} == {n.replace('"', "%22") for n in names}


def test_commentary_with_script_renders_as_text(portal_app, good_dir, tmp_path):
    token = portal_app.state.portal.store.issue_link(GOV, Q4.key)
    bad = tmp_path / "script.xlsx"
    mutate(good_dir / GOVERNANCE, bad, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", "<script>alert(1)</script>"))
    with TestClient(portal_app) as c:
        r = _upload(c, token, "script.xlsx", bad.read_bytes())
    assert r.status_code == 200 and "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


def test_an_oversized_upload_gets_413_and_the_server_goes_on(portal_app, good_dir):
    token = portal_app.state.portal.store.issue_link(GOV, Q4.key)
    with TestClient(portal_app) as c:
        r = _upload(c, token, "huge.xlsx", b"PK" + b"\0" * (MAX_UPLOAD_BYTES + 100_000))
        assert r.status_code == 413 and "too large" in r.text
        assert _upload(c, token, "fine.xlsx", (good_dir / GOVERNANCE).read_bytes()).status_code == 200
    assert [u.original_name for u in portal_app.state.portal.store.uploads(Q4.key)] == ["fine.xlsx"]


def test_a_post_without_its_csrf_token_is_refused(portal_app, good_dir):
    token = portal_app.state.portal.store.issue_link(GOV, Q4.key)
    with TestClient(portal_app) as c:
        for csrf in ("", "forged"):
            r = _upload(c, token, "a.xlsx", (good_dir / GOVERNANCE).read_bytes(), csrf=csrf)
            assert r.status_code == 403 and "Reload the page" in r.text
        assert c.post("/team/login", data={"name": "alex", "password": PASSWORD}).status_code == 403
        team_csrf = _signed_in(c)
        assert c.post("/team/consolidate", data={}).status_code == 403
        assert c.post("/team/links", data={"csrf": "nope"}).status_code == 403
        assert c.post("/team/consolidate", data={"csrf": team_csrf}).status_code in (200, 409)
    assert portal_app.state.portal.store.uploads(Q4.key) == []


def test_team_pages_need_signing_in_and_cookies_are_httponly(portal_app):
    with TestClient(portal_app, follow_redirects=False) as c:
        for path in ("/team", "/team/links", "/team/chase.csv", "/team/master", "/team/history"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/team/login", path
        wrong = c.post("/team/login", data={"csrf": _csrf(c.get("/team/login").text), "name": "alex", "password": "guess"})
        assert wrong.status_code == 401 and "do not match" in wrong.text
        ok = c.post("/team/login", data={"csrf": _csrf(c.get("/team/login").text), "name": "alex", "password": PASSWORD})
        cookie = ok.headers["set-cookie"].lower()
        assert ok.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie


def test_the_hostile_corpus_through_the_portal_gives_findings_and_it_keeps_answering(portal_app, good_dir):
    token = portal_app.state.portal.store.issue_link(GOV, Q4.key)
    good = (good_dir / GOVERNANCE).read_bytes()
    with TestClient(portal_app) as c:
        for kind, code in HOSTILE.items():
            name, data = _build(kind, good)
            r = _upload(c, token, name, data)
            assert r.status_code == 200 and "Traceback" not in r.text, kind
            latest = portal_app.state.portal.store.latest(Q4.key)[GOV]
            assert code in {f["code"] for f in latest.findings} and not latest.valid, kind
        assert "Valid" in _upload(c, token, "good.xlsx", good).text


def test_consolidation_refusals_are_pages_not_tracebacks(portal_app):
    with TestClient(portal_app) as c:
        csrf = _signed_in(c)
        r = c.post("/team/consolidate", data={"csrf": csrf})
    assert r.status_code == 409 and "Not consolidated: no portfolio has a valid upload for 2024/25 Q4 yet" in r.text


def test_issued_links_come_as_a_csv_once_and_reissuing_replaces_them(portal_app, register):
    with TestClient(portal_app) as c:
        csrf = _signed_in(c)
        r = c.post("/team/links", data={"csrf": csrf})
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert [row["Portfolio"] for row in rows] == register.portfolios
        first = next(row["Link"] for row in rows if row["Portfolio"] == GOV)
        assert c.get(first.replace("http://testserver", "")).status_code == 200
        again = c.post("/team/links", data={"csrf": csrf, "portfolio": GOV})
        (row,) = list(csv.DictReader(io.StringIO(again.content.decode("utf-8-sig"))))
        assert c.get(first.replace("http://testserver", "")).status_code == 403  # replaced
        assert c.get(row["Link"].replace("http://testserver", "")).status_code == 200
        token = row["Link"].rsplit("/", 1)[1]
        assert len(token) >= 43  # 256 bits, url-safe base64
        assert token not in (portal_app.state.portal.home / "portal.sqlite").read_bytes().decode("latin-1")


# -- the walk-through in a real browser --


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(portal_app):
    """The portal served by uvicorn on loopback, in a thread of this process."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(portal_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", portal_app
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


#: Where the walk-through's screenshots go (kept after the run, to be looked at).
SHOTS = Path(__file__).resolve().parent.parent / "outputs" / "portal-screenshots"


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _downloaded(folder: Path, pattern: str, timeout: float = 20) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        # Chromium writes into NAME.crdownload beside an empty NAME it reserves, and renames
        # when done: a download is finished when no .crdownload is left and it has bytes.
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload") and p.stat().st_size > 0]
        if done and not any(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"nothing matching {pattern} was downloaded to {folder}: {list(folder.iterdir())}")


def _wait_for(driver, css: str, timeout: float = 20):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _upload_in_browser(d, path: Path) -> None:
    """Choose the file, press Upload, and wait for the page of its result (a new page)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    before = d.find_element(By.TAG_NAME, "main")
    d.find_element(By.ID, "return").send_keys(str(path))
    d.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    WebDriverWait(d, 30).until(ec.staleness_of(before))
    _wait_for(d, "#verdict")


@pytest.mark.browser
def test_a_lead_and_the_team_in_a_real_browser(served, browser, tmp_path):
    from openpyxl import load_workbook
    from selenium.webdriver.common.by import By

    base, app = served
    d = browser
    # The team signs in: every portfolio not returned yet.
    d.get(base + "/team/login")
    _shot(d, "1-team-sign-in")
    d.find_element(By.ID, "name").send_keys("alex")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    _wait_for(d, "table.tracker")
    assert d.page_source.count("not returned") >= 9
    _shot(d, "2-tracker-empty")
    # ... and issues the links: a CSV for the mail merge.
    d.get(base + "/team/links")
    d.find_element(By.CSS_SELECTOR, "form.issue button").click()
    links = _downloaded(d.downloads, "links_*.csv")
    link = next(r["Link"] for r in csv.DictReader(open(links, encoding="utf-8-sig")) if r["Portfolio"] == GOV)
    d.get(base + "/team/links")
    _shot(d, "3-links")
    # The lead opens their link and downloads the template.
    d.delete_all_cookies()
    d.get(link)
    assert GOV in d.find_element(By.TAG_NAME, "h1").text
    _shot(d, "4-lead-page")
    d.find_element(By.PARTIAL_LINK_TEXT, "Download the").click()
    template = _downloaded(d.downloads, "Governance*.xlsx")
    # They fill it in, with one slip: words in a number cell.
    filled = tmp_path / "filled.xlsx"
    fill_return(template, load_answers(), filled)
    faulty = tmp_path / "Governance return.xlsx"
    mutate(filled, faulty, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", "about 6"))
    _upload_in_browser(d, faulty)
    assert "error(s) to fix" in d.find_element(By.ID, "verdict").text
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "table.findings tbody tr")]
    assert any(r.startswith("Measures!G4 LPD PM06") and "'about 6' is not a number" in r for r in rows), rows
    _shot(d, "5-lead-faulty-upload")
    # The fixed one: valid, with the statuses the master will show.
    _upload_in_browser(d, filled)
    assert d.find_element(By.ID, "verdict").text.startswith("Valid")
    assert "superseded" in d.find_element(By.CSS_SELECTOR, "table.history").text
    _shot(d, "6-lead-valid")
    # The team sees the tracker change, consolidates and downloads the master.
    d.get(base + "/team/login")
    d.find_element(By.ID, "name").send_keys("alex")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    _wait_for(d, "table.tracker")
    first_row = d.find_element(By.CSS_SELECTOR, "table.tracker tbody tr:last-child").text
    assert GOV in first_row and ("signed off" in first_row or "valid" in first_row)
    d.find_element(By.CSS_SELECTOR, "form.consolidate button").click()
    _wait_for(d, "#consolidated")
    assert d.find_element(By.ID, "consolidated").text.startswith("Consolidated: 1 return(s) used")
    _shot(d, "7-tracker-consolidated")
    d.find_element(By.LINK_TEXT, "Download the master").click()
    master = _downloaded(d.downloads, "master_*.xlsx")
    ws = load_workbook(master, read_only=True)["Data"]
    header = [c.value for c in next(ws.iter_rows(max_row=1))]
    data = {r[header.index("Ref")]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    sent = {s["ref"]: s["actual"] for s in app.state.portal.store.latest(Q4.key)[GOV].statuses}
    assert len(sent) == 9 and all(data[ref][header.index("Actual")] == actual for ref, actual in sent.items())
    assert data["LPD PM06"][header.index("Actual")] is not None
    d.get(base + "/team/history")
    _shot(d, "8-history")


def test_fifty_concurrent_uploads_are_all_recorded(served, good_dir, capsys):
    import httpx2 as httpx

    base, app = served
    store = app.state.portal.store
    token = store.issue_link(GOV, Q4.key)
    good = (good_dir / GOVERNANCE).read_bytes()
    with httpx.Client() as c:
        csrf = _csrf(c.get(f"{base}/r/{token}").text)
        _upload_http(c, base, token, csrf, good, "warm.xlsx")  # the workers started

    def one(i: int) -> float:
        with httpx.Client(timeout=120) as c:
            started = time.monotonic()
            r = _upload_http(c, base, token, csrf, good, f"upload-{i:02d}.xlsx")
            assert r.status_code == 200 and "Valid" in r.text
            return time.monotonic() - started

    with ThreadPoolExecutor(50) as pool:
        times = list(pool.map(one, range(50)))
    names = {u.original_name for u in store.uploads(Q4.key)}
    assert {f"upload-{i:02d}.xlsx" for i in range(50)} <= names
    with capsys.disabled():
        print(f"\n50 concurrent uploads: median {statistics.median(times):.2f} s, worst {max(times):.2f} s upload to findings")


def _upload_http(client, base: str, token: str, csrf: str, data: bytes, name: str):
    return client.post(f"{base}/r/{token}/upload", data={"csrf": csrf}, files={"return": (name, data, "application/octet-stream")}, follow_redirects=True)


def test_the_commands_create_an_account_and_serve(tmp_path):
    import subprocess
    import sys
    import urllib.request

    home = tmp_path / "portal"
    cli = [sys.executable, "-m", "derbyxl.cli"]
    short = subprocess.run([*cli, "portal", "add-user", "alex", "--home", str(home), "--password-stdin"], input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "too short" in short.stderr and not (home / "portal.sqlite").exists()
    made = subprocess.run([*cli, "portal", "add-user", "alex", "--home", str(home), "--password-stdin"], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and "can now sign in" in made.stdout
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--period", Q4.key, "--home", str(home), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Portal for 2024/25 Q4 at http://127.0.0.1:" in server.stdout.readline()
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/team/login", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "Performance team: sign in" in page and "No team account exists yet" not in page
    finally:
        server.terminate()
        server.wait(30)
    from derbyxl.portal.store import Store

    store = Store(home / "portal.sqlite")
    assert store.check_password("alex", PASSWORD) and not store.check_password("alex", "wrong password")
    store.close()


def test_stored_uploads_and_templates_get_the_umask(portal_app, good_dir):
    import os
    import stat

    portal = portal_app.state.portal
    token = portal.store.issue_link(GOV, Q4.key)
    old = os.umask(0o027)
    try:
        with TestClient(portal_app) as c:
            assert _upload(c, token, "a.xlsx", (good_dir / GOVERNANCE).read_bytes()).status_code == 200
            assert c.get(f"/r/{token}/template").status_code == 200
    finally:
        os.umask(old)
    (stored,) = portal.uploads_dir.iterdir()
    (template,) = (portal.home / "templates").rglob("*.xlsx")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640 and stat.S_IMODE(template.stat().st_mode) == 0o640
    assert template.parent.name == f"{portal.register.fingerprint}_{portal.due.isoformat()}"  # kept by register and due date


def test_password_guessing_is_slowed_per_name(portal_app):
    from derbyxl.portal.views import SIGN_IN_TRIES

    with TestClient(portal_app) as c:
        csrf = _csrf(c.get("/team/login").text)
        for _ in range(SIGN_IN_TRIES):
            assert c.post("/team/login", data={"csrf": csrf, "name": "alex", "password": "guess"}).status_code == 401
        r = c.post("/team/login", data={"csrf": csrf, "name": "alex", "password": PASSWORD})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text  # even the right one, for now
        other = c.post("/team/login", data={"csrf": csrf, "name": "sam", "password": "guess"})
        assert other.status_code == 401  # another name is not held up


def test_the_page_and_the_template_give_the_same_due_date(tmp_path, register):
    import datetime as dt

    from openpyxl import load_workbook

    app = create_app(tmp_path / "portal", register, Q4, workers=1, due=dt.date(2025, 4, 30))
    token = app.state.portal.store.issue_link(GOV, Q4.key)
    try:
        with TestClient(app) as c:
            page = c.get(f"/r/{token}").text
            (tmp_path / "t.xlsx").write_bytes(c.get(f"/r/{token}/template").content)
    finally:
        app.state.portal.runner.close()
    assert "due <strong>Wednesday 30 April 2025</strong>" in page
    cover = load_workbook(tmp_path / "t.xlsx", read_only=True)["Cover"]
    assert "Wednesday 30 April 2025" in [c for row in cover.iter_rows(values_only=True) for c in row]
