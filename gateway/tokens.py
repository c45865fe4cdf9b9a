"""API tokens for machine clients (MES, ERP, a quality database): `Authorization: Bearer`.

    reman gateway token create NAME --scope read|override|admin [--expires 90d]
    reman gateway token list | revoke NAME

A token is `rmn_<id>_<secret>`: the id finds its row, the secret is random (256 bits) and only
its SHA-256 is stored, so a copy of the store gives no token away. (A slow password hash such as
argon2 protects guessable passwords; a random 256-bit secret needs none, and a fast hash keeps
every API request cheap.) The token is shown once, when it is made. A revoked or expired token
gets 401 at once: every request reads its row.

Scopes are what a machine client may do, each including the one before:

    read       the API's reads: inspections, stations, events, trends, circularity, passports
    override   also confirm and override decisions (POST .../confirm, .../override)
    admin      everything an admin account may do through the API

Requests with a token carry no cookie, so they need no CSRF token. Their audit entries name
the token as `token:<name>`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from edge.contract.timefmt import UTC, normalize_ts, rfc3339, utc_now
from gateway.errors import AuthError, StoreError

SCOPES = ("read", "override", "admin")
PREFIX = "rmn_"
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_TOKEN = re.compile(r"^rmn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
    created_ts TEXT NOT NULL, expires_ts TEXT, revoked_ts TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_api_tokens_active_name ON api_tokens (name)
    WHERE revoked_ts IS NULL;
"""
"""A name is one token's while it is not revoked; revoked rows stay, for the record."""


class Database(Protocol):
    """What tokens need of the store (gateway.store.Store)."""

    def select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: Sequence[Any], what: str) -> int: ...


@dataclass(frozen=True)
class TokenUser:
    """Who a request with a valid token acts as: `token:<name>`, with its scope's permissions."""

    name: str
    scope: str

    @property
    def username(self) -> str:
        return f"token:{self.name}"

    @property
    def role(self) -> str:
        return f"token-{self.scope}"

    language = None  # a machine client reads the API's English


def create_tables(conn: Any) -> None:
    """The tokens table in a SQLite store's connection (a new store gets it; an older one gains
    it when opened; PostgreSQL's is in gateway.backends.postgres' migrations)."""
    conn.executescript(_SCHEMA)


def parse_expiry(text: str | None, now: datetime | None = None) -> str | None:
    """`90d`, `12h` or an RFC 3339 time as the stored expiry time; None for no expiry."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    found = re.fullmatch(r"(\d+)([dh])", text.strip())
    if found:
        amount = int(found.group(1))
        delta = timedelta(days=amount) if found.group(2) == "d" else timedelta(hours=amount)
        if amount <= 0:
            raise AuthError(f"--expires {text}: must be more than 0")
        return rfc3339(now + delta)
    try:
        when = normalize_ts(text)
    except ValueError:
        raise AuthError(f"--expires {text!r}: give 90d, 12h or a time such as 2027-06-30") from None
    if when <= rfc3339(now):
        raise AuthError(f"--expires {text}: that time has passed")
    return when


def create(store: Database, name: str, scope: str, expires_ts: str | None = None) -> str:
    """A new token for `name` (unique) with `scope`; the returned text is shown only once."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise AuthError(f"token name {name!r}: use 1 to 64 of A-Z a-z 0-9 . _ -")
    if scope not in SCOPES:
        raise AuthError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    try:  # the unique index on active names refuses a second one: no row is added
        added = store.execute(
            "INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING",
            (token_id, name, scope, _digest(secret), utc_now(), expires_ts),
            "store the token",
        )
    except StoreError as exc:
        raise AuthError(str(exc)) from exc
    if not added:
        raise AuthError(f"a token named {name!r} exists; revoke it first")
    return f"{PREFIX}{token_id}_{secret}"


def revoke(store: Database, name: str) -> bool:
    """Revoke the token named `name`; False when there is none that is not revoked already."""
    try:
        changed = store.execute(
            "UPDATE api_tokens SET revoked_ts = ? WHERE name = ? AND revoked_ts IS NULL",
            (utc_now(), name),
            "revoke the token",
        )
    except StoreError as exc:
        raise AuthError(str(exc)) from exc
    return changed > 0


def listed(store: Database) -> list[dict[str, Any]]:
    """Every token's name, scope and times (never a secret), oldest first."""
    try:
        return store.select(
            "SELECT name, scope, created_ts, expires_ts, revoked_ts FROM api_tokens "
            "ORDER BY created_ts, name",
            [],
        )
    except StoreError as exc:
        raise AuthError(f"cannot read the tokens: {exc}") from exc


def verify(store: Database, text: str, now_ts: str | None = None) -> TokenUser | None:
    """Who the token `text` is, or None when it is malformed, unknown, revoked or expired."""
    found = _TOKEN.fullmatch(text.strip())
    if not found:
        return None
    token_id, secret = found.groups()
    try:
        rows = store.select(
            "SELECT name, scope, secret_sha256, expires_ts, revoked_ts FROM api_tokens "
            "WHERE id = ?",
            [token_id],
        )
    except StoreError as exc:
        raise AuthError(f"cannot read the tokens: {exc}") from exc
    if not rows:
        _digest(secret)  # the same work for an unknown id
        return None
    row = rows[0]
    name, scope, digest = row["name"], row["scope"], row["secret_sha256"]
    expires_ts, revoked_ts = row["expires_ts"], row["revoked_ts"]
    if not secrets.compare_digest(digest, _digest(secret)):
        return None
    if revoked_ts is not None or (expires_ts is not None and expires_ts <= (now_ts or utc_now())):
        return None
    return TokenUser(name, scope)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
