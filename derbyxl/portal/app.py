"""The returns portal's web application (Starlette, Jinja2 pages that work without
JavaScript): service leads upload through a personal link and see at once what to fix; the
performance team signs in, watches the quarter fill up, issues links and consolidates.

Everything a page shows comes from the same library as the command line: templates from
:func:`derbyxl.template.write_template`, findings from :func:`derbyxl.validate.validate_paths`
(files read by the one runner, :mod:`derbyxl.runner`), the chase list from
:mod:`derbyxl.chase`, the master from :func:`derbyxl.consolidate.consolidate`.

Safety: every request for a lead's page is checked against the link's portfolio and quarter
on the server; uploads are size-limited (413), stored under their SHA-256 outside anything
served, and never opened here (the runner's workers read them); every form that changes
state carries a CSRF token; cookies are HttpOnly and SameSite; pages escape all workbook
text (Jinja2 autoescaping); errors are pages that say what to do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from derbyxl.periods import Period, long_date, period_label, uk_time
from derbyxl.portal.store import Store
from derbyxl.register import Register

log = logging.getLogger("derbyxl.portal")
HERE = Path(__file__).resolve().parent

#: Largest upload accepted (a return is about 30 KB; Excel's largest real ones a few MB).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",  # a lead's link is a secret: never sent on to other sites
    "cache-control": "no-store",
}


@dataclass
class Portal:
    """The portal's state: its folder, register, quarter, database and runner."""

    home: Path
    register: Register
    period: Period
    store: Store
    runner: object
    secret: bytes
    due: dt.date | None = None

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def outputs(self) -> Path:
        return self.home / "outputs"

    @property
    def history_path(self) -> Path:
        return self.outputs / "history.sqlite"

    def csrf_for(self, identity: str) -> str:
        return hmac.new(self.secret, b"csrf:" + identity.encode(), hashlib.sha256).hexdigest()


def load_secret(home: Path) -> bytes:
    """The key that signs cookies and CSRF tokens: made once, kept in ``HOME/portal.key``."""
    path = home / "portal.key"
    if not path.exists():  # readable by this account alone from the first byte (not the umask: a secret)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def create_app(home: str | Path, register: Register, period: Period | str, *, workers: int | None = None, due: dt.date | None = None) -> Starlette:
    """The portal for ``period`` over ``register``, keeping its state in ``home``; ``due`` is
    the due date its pages and templates show (three weeks after the quarter by default)."""
    from derbyxl.validate import runner_for
    from derbyxl.xlsx_util import ensure_folder

    home = Path(home)
    ensure_folder(home)
    for sub in ("uploads", "outputs", "annotated", "templates"):
        ensure_folder(home / sub)
    period = Period.parse(period)
    due = due or period.due_date()
    portal = Portal(home, register, period, Store(home / "portal.sqlite"), runner_for(register, workers, long_lived=True), load_secret(home), due)
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
    env.globals.update(period_label=period_label, uk_time=uk_time, long_date=long_date)

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        html = env.get_template(name).render(request=request, portal=portal, **context)
        return HTMLResponse(html, status_code=status)

    from derbyxl.portal import views

    routes = views.routes(portal, page)
    app = Starlette(
        routes=routes + [Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")],
        middleware=[Middleware(SessionMiddleware, secret_key=portal.secret.hex(), session_cookie="derbyxl_team", same_site="strict", https_only=False, max_age=8 * 3600)],
        exception_handlers={HTTPException: _error_page(page), Exception: _error_page(page)},
        lifespan=_lifespan(portal),
    )
    app.state.portal = portal
    return _Guard(app, portal)


def _lifespan(portal: Portal):
    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:  # the workers end with the server (and start again if it serves again)
            portal.runner.close()

    return lifespan


class _Guard:
    """The outermost layer: security headers on every response, and uploads over the size
    limit refused with 413 before they are read (by their Content-Length, or by counting)."""

    def __init__(self, app, portal: Portal):
        self.app = app
        self.state = app.state
        self.portal = portal

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if scope.get("method") == "POST" and length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
            return await _too_large(send_with_headers)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_UPLOAD_BYTES + 64 * 1024:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except _TooLarge:
            await _too_large(send_with_headers)


class _TooLarge(Exception):
    pass


async def _too_large(send) -> None:
    body = f"<!doctype html><title>File too large</title><h1>That file is too large</h1><p>A return is at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Check you chose the return workbook, not a folder or an email, and try again.</p>".encode()
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error_page(page):
    async def handler(request: Request, exc: Exception):
        if isinstance(exc, HTTPException):
            status, detail = exc.status_code, exc.detail
        else:
            log.exception("error serving %s", request.url.path)
            status, detail = 500, "Something went wrong on our side. Try again; if it happens again, tell the performance team."
        messages = {
            403: "This link does not open that page. Use the link the performance team sent you for your own portfolio; if it stopped working, ask them for a new one.",
            404: "There is no such page. Check the address, or use the link the performance team sent you.",
        }
        if detail == HTTPStatus(status).phrase:  # raised without words of its own
            detail = messages.get(status, detail)
        return page(request, "error.html", status=status, status_code=status, detail=detail)

    return handler
