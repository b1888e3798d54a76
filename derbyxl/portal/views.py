"""The portal's pages: a lead's (through a personal link) and the performance team's."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from derbyxl.portal.store import STATES, Link, Upload

#: What a stored upload keeps of its original name: a plain extension (the checks go by it).
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: One consolidation at a time (the library refuses a second one; this keeps the message kind).
_CONSOLIDATING = threading.Lock()
#: Failed sign-ins a name may have in the window before it must wait for the window to pass.
SIGN_IN_TRIES, SIGN_IN_WINDOW = 10, 15 * 60


class _Tries:
    """Failed sign-ins by name, in memory: guessing a team password is slowed to 10 tries a
    quarter of an hour per name (on top of argon2's cost per try)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._failed: dict[str, list[float]] = {}

    def blocked(self, name: str) -> int:
        """Seconds until ``name`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failed.get(name, []) if now - t < SIGN_IN_WINDOW]
            self._failed[name] = recent
            return int(SIGN_IN_WINDOW - (now - recent[0])) + 1 if len(recent) >= SIGN_IN_TRIES else 0

    def failed(self, name: str) -> None:
        with self._lock:
            self._failed.setdefault(name, []).append(time.monotonic())

    def cleared(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name, None)


def routes(portal, page) -> list[Route]:
    tries = _Tries()
    def live_link(request: Request) -> Link:
        link = portal.store.link_for(request.path_params["token"])
        if link is None or link.period != portal.period.key:
            raise HTTPException(403)
        return link

    def lead_csrf(link: Link) -> str:
        return portal.csrf_for(f"link:{link.id}")

    def check_csrf(expected: str, form) -> None:
        given = str(form.get("csrf") or "")
        if not hmac.compare_digest(given, expected):
            raise HTTPException(403, "The form was out of date or came from another page. Reload the page and try again.")

    # -- a service lead's pages --

    async def lead(request: Request):
        link = live_link(request)
        uploads = portal.store.uploads(portal.period.key, link.portfolio)
        shown = uploads[0] if uploads else None
        wanted = request.query_params.get("upload")
        if wanted and wanted.isdigit():
            shown = next((u for u in uploads if u.id == int(wanted)), shown)
        return page(request, "lead.html", link=link, token=request.path_params["token"], uploads=uploads, shown=shown, csrf=lead_csrf(link),
                    items=len(portal.register.for_portfolio(link.portfolio)))  # fmt: skip

    async def lead_template(request: Request):
        link = live_link(request)
        path = await run_in_threadpool(_template_for, portal, link.portfolio)
        return FileResponse(path, media_type=XLSX, filename=path.name)

    async def lead_upload(request: Request):
        link = live_link(request)
        async with request.form(max_files=1, max_fields=5) as form:
            check_csrf(lead_csrf(link), form)
            upload = form.get("return")
            if upload is None or isinstance(upload, str) or not upload.filename:
                raise HTTPException(400, "No file was chosen. Choose your return workbook (.xlsx) and press Upload.")
            data = await upload.read()
            name = upload.filename
        upload_id = await run_in_threadpool(check_upload, portal, link, name, data)
        return RedirectResponse(f"/r/{request.path_params['token']}?upload={upload_id}", status_code=303)

    async def lead_annotated(request: Request):
        link = live_link(request)
        upload = portal.store.upload(int(request.path_params["upload_id"]))
        if upload is None or upload.portfolio != link.portfolio or upload.period != link.period or not upload.annotated:
            raise HTTPException(404)
        path = portal.home / "annotated" / upload.annotated
        return FileResponse(path, media_type=XLSX, filename=f"{Path(upload.original_name).stem[:80] or 'return'}_problems.xlsx")

    # -- the performance team's pages --

    def team_user(request: Request) -> str:
        user = request.session.get("user")
        if not user:
            raise _SignIn()
        return user

    def team_csrf(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(16)
        return portal.csrf_for("session:" + request.session["csrf"])

    async def login_form(request: Request):
        return page(request, "login.html", csrf=team_csrf(request), failed=False, has_accounts=portal.store.has_accounts())

    async def login(request: Request):
        form = await request.form()
        check_csrf(team_csrf(request), form)
        name, password = str(form.get("name") or ""), str(form.get("password") or "")
        wait = tries.blocked(name)
        if wait:
            return page(request, "login.html", status=429, csrf=team_csrf(request), failed=False, wait=(wait + 59) // 60, has_accounts=portal.store.has_accounts())
        ok = await run_in_threadpool(portal.store.check_password, name, password)
        if not ok:
            tries.failed(name)
            return page(request, "login.html", status=401, csrf=team_csrf(request), failed=True, has_accounts=portal.store.has_accounts())
        tries.cleared(name)
        request.session.clear()
        request.session["user"] = name
        request.session["csrf"] = secrets.token_urlsafe(16)
        return RedirectResponse("/team", status_code=303)

    async def logout(request: Request):
        form = await request.form()
        check_csrf(team_csrf(request), form)
        request.session.clear()
        return RedirectResponse("/team/login", status_code=303)

    def tracker_page(request: Request, user: str, status: int = 200, result=None, problem: str | None = None):
        rows = tracker_rows(portal)
        counts = {state: sum(1 for r in rows if r["state"] == state) for state in STATES}
        return page(request, "tracker.html", status=status, user=user, rows=rows, counts=counts, csrf=team_csrf(request), result=result, problem=problem)

    async def tracker(request: Request):
        return tracker_page(request, team_user(request))

    async def chase_csv(request: Request):
        team_user(request)
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["Portfolio", "State", "Last upload", "Errors", "Warnings", "Lead officers", "Emails"])
        for r in tracker_rows(portal):
            if r["state"] != STATES[-1]:
                w.writerow([r["portfolio"], r["state"], r["received"] or "", r["errors"], r["warnings"], "; ".join(r["officers"]), "; ".join(r["emails"])])
        return _csv_response(out.getvalue(), f"chase_{portal.period.key}.csv")

    async def issue_links(request: Request):
        team_user(request)
        form = await request.form()
        check_csrf(team_csrf(request), form)
        chosen = [p for p in form.getlist("portfolio") if p in portal.register.portfolios] or portal.register.portfolios
        base = str(request.base_url).rstrip("/")
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["Portfolio", "Lead officers", "Emails", "Link", "Quarter"])
        for portfolio in chosen:
            for old in portal.store.links(portal.period.key):  # re-sending replaces the link
                if old.portfolio == portfolio and old.revoked_at is None:
                    portal.store.revoke(old.id)
            token = portal.store.issue_link(portfolio, portal.period.key)
            officers, emails = _officers(portal, portfolio)
            w.writerow([portfolio, "; ".join(officers), "; ".join(emails), f"{base}/r/{token}", portal.period.label])
        return _csv_response(out.getvalue(), f"links_{portal.period.key}.csv")

    async def links_page(request: Request):
        user = team_user(request)
        return page(request, "links.html", user=user, links=portal.store.links(portal.period.key), csrf=team_csrf(request), portfolios=portal.register.portfolios)

    async def revoke_link(request: Request):
        team_user(request)
        form = await request.form()
        check_csrf(team_csrf(request), form)
        portal.store.revoke(int(request.path_params["link_id"]))
        return RedirectResponse("/team/links", status_code=303)

    async def consolidate_quarter(request: Request):
        user = team_user(request)
        form = await request.form()
        check_csrf(team_csrf(request), form)
        result, problem = await run_in_threadpool(run_consolidation, portal, bool(form.get("replace")))
        return tracker_page(request, user, 200 if result else 409, result, problem)

    async def master(request: Request):
        team_user(request)
        from derbyxl.master import master_filename

        path = portal.outputs / master_filename(portal.period)
        if not path.is_file():
            raise HTTPException(404, "No master yet for this quarter: consolidate first.")
        return FileResponse(path, media_type=XLSX, filename=path.name)

    async def history_page(request: Request):
        user = team_user(request)
        from derbyxl.history import History

        with History(portal.history_path) as h:
            runs = h.runs()
        return page(request, "history.html", user=user, runs=runs, csrf=team_csrf(request))

    async def home(request: Request):
        return RedirectResponse("/team", status_code=303)

    return [
        Route("/", home),
        Route("/r/{token}", lead),
        Route("/r/{token}/template", lead_template),
        Route("/r/{token}/upload", lead_upload, methods=["POST"]),
        Route("/r/{token}/annotated/{upload_id:int}", lead_annotated),
        Route("/team/login", login_form),
        Route("/team/login", login, methods=["POST"]),
        Route("/team/logout", logout, methods=["POST"]),
        Route("/team", _signed_in(tracker)),
        Route("/team/chase.csv", _signed_in(chase_csv)),
        Route("/team/links", _signed_in(links_page)),
        Route("/team/links", _signed_in(issue_links), methods=["POST"]),
        Route("/team/links/{link_id:int}/revoke", _signed_in(revoke_link), methods=["POST"]),
        Route("/team/consolidate", _signed_in(consolidate_quarter), methods=["POST"]),
        Route("/team/master", _signed_in(master)),
        Route("/team/history", _signed_in(history_page)),
    ]


class _SignIn(Exception):
    """Not signed in: go to the sign-in page."""


def _signed_in(view):
    async def wrapped(request: Request):
        try:
            return await view(request)
        except _SignIn:
            return RedirectResponse("/team/login", status_code=303)

    return wrapped


def _csv_response(text: str, filename: str) -> Response:
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers={"content-disposition": f'attachment; filename="{filename}"'})


def _officers(portal, portfolio: str) -> tuple[list[str], list[str]]:
    items = portal.register.for_portfolio(portfolio)
    officers = list(dict.fromkeys(i.lead_officer for i in items if i.lead_officer))
    emails = list(dict.fromkeys(i.email for i in items if i.email))
    return officers, emails


def _template_for(portal, portfolio: str) -> Path:
    """The portfolio's template for the quarter, as `derbyxl templates` writes it (made once)."""
    from derbyxl.history import History
    from derbyxl.spec import template_filename
    from derbyxl.template import write_template

    # Kept by register and due date: a portal restarted with either changed makes them afresh.
    folder = portal.home / "templates" / f"{portal.register.fingerprint}_{portal.due.isoformat()}"
    path = folder / template_filename(portfolio, portal.period.key)
    if not path.exists():
        previous = None
        if portal.history_path.exists():
            with History(portal.history_path) as h:
                previous = h.latest_values(before=portal.period)
        write_template(portal.register, portfolio, portal.period, folder, previous=previous, due=portal.due)
    return path


def check_upload(portal, link: Link, original_name: str, data: bytes) -> int:
    """Store an upload under its SHA-256, check it with the runner, record what was found;
    returns the upload's id. The original name is kept as text only."""
    from derbyxl.annotate import annotate_file
    from derbyxl.findings import finding
    from derbyxl.history import History
    from derbyxl.validate import validate_paths

    sha = hashlib.sha256(data).hexdigest()
    suffix = _SUFFIX.search(original_name or "")
    stored = portal.uploads_dir / (sha + (suffix.group(0).lower() if suffix else ""))
    if not stored.exists():
        from derbyxl.xlsx_util import atomic_path

        with atomic_path(stored) as part:  # whole or not at all, with the user's umask
            part.write_bytes(data)
    history = History(portal.history_path) if portal.history_path.exists() else None
    try:
        report = validate_paths([stored], portal.register, period=portal.period, runner=portal.runner, history=history)
    finally:
        if history is not None:
            history.close()
    fr = report.files[0]
    if fr.portfolio and fr.portfolio != link.portfolio:
        fr.findings.insert(0, finding("other-portfolio", fr.workbook, f"this is the return for {fr.portfolio}; this page is for {link.portfolio}"))
    annotated = None
    if fr.findings:
        name = f"{sha[:32]}_{link.id}_problems.xlsx"  # per link: the findings can differ by portfolio
        if annotate_file(fr, portal.home / "annotated", name=name) is not None:
            annotated = name
    by_ref = portal.register.by_ref
    statuses = [
        {"ref": r["ref"], "kind": r["kind"], "description": by_ref[r["ref"]].description if r["ref"] in by_ref else "", "actual": r.get("actual"),
         "unit": by_ref[r["ref"]].unit if r["ref"] in by_ref else None, "status": r.get("status")}
        for r in fr.rows
    ]  # fmt: skip
    findings = [{"sheet": f.sheet, "cell": f.cell, "ref": f.ref, "code": f.code, "severity": f.severity, "message": f.message, "hint": f.hint} for f in fr.findings]
    valid = fr.valid and not any(f["code"] == "other-portfolio" for f in findings)
    return portal.store.add_upload(
        portfolio=link.portfolio, period=portal.period.key, link_id=link.id, original_name=original_name or "(no name)", stored=stored.name, sha256=sha,
        valid=valid, signed=bool(fr.signed_by), errors=sum(f["severity"] == "error" for f in findings), warnings=sum(f["severity"] == "warning" for f in findings),
        findings=findings, statuses=statuses, annotated=annotated,
    )  # fmt: skip


def tracker_rows(portal) -> list[dict]:
    """Every portfolio of the quarter with its state and last upload."""
    latest = portal.store.latest(portal.period.key)
    rows = []
    for portfolio in portal.register.portfolios:
        up: Upload | None = latest.get(portfolio)
        officers, emails = _officers(portal, portfolio)
        rows.append(
            {
                "portfolio": portfolio,
                "state": up.state if up else STATES[0],
                "received": up.received_at if up else None,
                "file": up.original_name if up else None,
                "errors": up.errors if up else 0,
                "warnings": up.warnings if up else 0,
                "officers": officers,
                "emails": emails,
            }
        )
    return sorted(rows, key=lambda r: STATES.index(r["state"]))


def run_consolidation(portal, replace: bool):
    """Consolidate the latest valid upload of each portfolio (the same rules and refusals as
    the command line). Returns (result, None) or (None, what stopped it)."""
    from derbyxl.consolidate import ConsolidationBusy, MasterNotWritten, Refused, consolidate
    from derbyxl.history import HistoryBusy
    from derbyxl.spec import template_filename

    stage = portal.home / "quarters" / portal.period.key
    with _CONSOLIDATING:
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        latest = portal.store.latest(portal.period.key)
        if not any(up.valid for up in latest.values()):
            return None, f"no portfolio has a valid upload for {portal.period.label} yet, so nothing was written; the tracker shows who to chase"
        for portfolio, up in latest.items():
            if up.valid:
                suffix = Path(up.stored).suffix or ".xlsx"
                shutil.copyfile(portal.uploads_dir / up.stored, stage / (Path(template_filename(portfolio, portal.period.key)).stem + suffix))
        try:
            result = consolidate(stage, portal.register, portal.period, portal.outputs, history_path=portal.history_path, replace=replace)
        except (Refused, ConsolidationBusy, HistoryBusy, MasterNotWritten) as exc:
            return None, str(exc)
    return result, None
