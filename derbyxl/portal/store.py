"""What the returns portal keeps: team accounts, service leads' personal links and every
upload, in one SQLite database (``HOME/portal.sqlite``) beside the quarter's history.

A personal link is a random token (256 bits from :mod:`secrets`) that is shown once, when
issued; only its SHA-256 is stored, so a copy of the database opens no portfolio. Team
passwords are stored as argon2id hashes (argon2-cffi).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS link (
    id INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    portfolio TEXT NOT NULL,
    period TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS upload (
    id INTEGER PRIMARY KEY,
    portfolio TEXT NOT NULL,
    period TEXT NOT NULL,
    link_id INTEGER,
    original_name TEXT NOT NULL,
    stored TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    valid INTEGER NOT NULL,
    signed INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    warnings INTEGER NOT NULL,
    findings TEXT NOT NULL,
    statuses TEXT NOT NULL,
    annotated TEXT
);
CREATE INDEX IF NOT EXISTS upload_portfolio ON upload (period, portfolio, id);
"""


_UPLOAD_COLUMNS = "id, portfolio, period, original_name, stored, sha256, received_at, valid, signed, errors, warnings, findings, statuses, annotated"


#: A portfolio's states in the tracker, in the order it lists them (those to chase first).
STATES = ("not returned", "returned with errors", "valid", "signed off")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Link:
    id: int
    portfolio: str
    period: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class Upload:
    id: int
    portfolio: str
    period: str
    original_name: str
    stored: str
    sha256: str
    received_at: str
    valid: bool
    signed: bool
    errors: int
    warnings: int
    findings: list[dict]
    statuses: list[dict]
    annotated: str | None

    @property
    def state(self) -> str:
        """What the tracker shows for a portfolio whose latest upload this is."""
        if not self.valid:
            return "returned with errors"
        return "signed off" if self.signed else "valid"


class Store:
    """The portal's database; one connection, used under a lock (uploads arrive on the web
    server's threads)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, args: tuple = ()):
        with self._lock:
            return self.db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()):
        with self._lock:
            return self.db.execute(sql, args).fetchall()

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self.db.execute(sql, args).lastrowid

    # -- team accounts --

    #: argon2's parameters for new hashes (its defaults: about 0.1 s a hash; tests lower them).
    HASHER_OPTIONS: dict = {}

    def _hasher(self):
        from argon2 import PasswordHasher

        return PasswordHasher(**self.HASHER_OPTIONS)

    def add_account(self, name: str, password: str) -> None:
        self._run("INSERT OR REPLACE INTO account VALUES (?, ?, ?)", (name, self._hasher().hash(password), now()))

    def has_accounts(self) -> bool:
        return self._one("SELECT 1 FROM account LIMIT 1") is not None

    def check_password(self, name: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        row = self._one("SELECT password_hash FROM account WHERE name = ?", (name,))
        hasher = self._hasher()
        if row is None:
            hasher.hash(password)  # the same time taken for a name that does not exist
            return False
        try:
            return hasher.verify(row[0], password)
        except (VerificationError, InvalidHashError):
            return False

    # -- personal links --

    def issue_link(self, portfolio: str, period: str) -> str:
        """A new link for a portfolio's lead; returns the token (shown once, kept hashed)."""
        token = secrets.token_urlsafe(32)
        self._run("INSERT INTO link (token_sha256, portfolio, period, created_at) VALUES (?, ?, ?, ?)", (token_hash(token), portfolio, period, now()))
        return token

    def link_for(self, token: str) -> Link | None:
        """The live link a token opens, or None (unknown or revoked)."""
        row = self._one("SELECT id, portfolio, period, created_at, revoked_at FROM link WHERE token_sha256 = ?", (token_hash(token),))
        if row is None or row[4] is not None:
            return None
        return Link(*row)

    def revoke(self, link_id: int) -> None:
        self._run("UPDATE link SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now(), link_id))

    def links(self, period: str) -> list[Link]:
        return [Link(*r) for r in self._all("SELECT id, portfolio, period, created_at, revoked_at FROM link WHERE period = ? ORDER BY portfolio, id", (period,))]

    # -- uploads --

    def add_upload(self, *, portfolio: str, period: str, link_id: int | None, original_name: str, stored: str, sha256: str, valid: bool, signed: bool,
                   errors: int, warnings: int, findings: list[dict], statuses: list[dict], annotated: str | None) -> int:  # fmt: skip
        return self._run(
            "INSERT INTO upload (portfolio, period, link_id, original_name, stored, sha256, received_at, valid, signed, errors, warnings, findings, statuses, annotated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (portfolio, period, link_id, original_name, stored, sha256, now(), int(valid), int(signed), errors, warnings, json.dumps(findings), json.dumps(statuses), annotated),
        )

    def uploads(self, period: str, portfolio: str | None = None) -> list[Upload]:
        """Uploads for the quarter (one portfolio's, or all), latest first."""
        if portfolio is None:
            return self._uploads("period = ?", (period,))
        return self._uploads("period = ? AND portfolio = ?", (period, portfolio))

    def upload(self, upload_id: int) -> Upload | None:
        found = self._uploads("id = ?", (upload_id,))
        return found[0] if found else None

    def _uploads(self, where: str, args: tuple) -> list[Upload]:
        rows = self._all(f"SELECT {_UPLOAD_COLUMNS} FROM upload WHERE {where} ORDER BY id DESC", args)
        return [Upload(*r[:7], bool(r[7]), bool(r[8]), r[9], r[10], json.loads(r[11]), json.loads(r[12]), r[13]) for r in rows]

    def latest(self, period: str) -> dict[str, Upload]:
        """Each portfolio's latest upload for the quarter (a resubmission supersedes)."""
        out: dict[str, Upload] = {}
        for u in self.uploads(period):
            out.setdefault(u.portfolio, u)
        return out
