"""Accounts, roles, sessions and CSRF tokens.

Users live in the gateway config with argon2 hashes. A login is a row in the store's `sessions`
table; the signed session cookie (Starlette's SessionMiddleware) carries only its random id.
Every request looks the session up in the store and the user in the config again, so a logout
(which deletes the row) ends that session for good, even for a copy of the cookie, and so does a
change of the user's password or role (the row holds a fingerprint of both) or the user's
removal from the config, once the gateway runs with the changed config. Every form
carries the session's CSRF token; a POST without the right one gets 403. Password guessing is
slowed per user name and address: after `http.login_max_failures` failures within
`http.login_lockout_s`, further tries get 429 without their password being checked.

    operator   view, confirm, flag (a core for labelling)
    engineer   view, confirm, flag, override, export, events, label (a photograph), models
               (see a station's models and its shadow's figures; changing them is admin's)
    admin      everything
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import HTTPException, Request

from edge.contract.timefmt import UTC, rfc3339, utc_now
from gateway import tokens
from gateway.config import HttpConfig, User
from gateway.errors import AuthError, LoginRequired
from gateway.i18n import Message
from gateway.tokens import TokenUser

log = logging.getLogger("reman.gateway.auth")

SESSION_SECRET_ENV = "REMAN_SESSION_SECRET"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"view", "confirm", "flag"}),
    "engineer": frozenset(
        {"view", "confirm", "flag", "override", "export", "events", "label", "models"}
    ),
    "admin": frozenset(
        {"view", "confirm", "flag", "override", "export", "events", "label", "models", "admin"}
    ),
}

_READ = frozenset({"view", "events", "export"})
TOKEN_PERMISSIONS: dict[str, frozenset[str]] = {
    "token-read": _READ,
    "token-override": _READ | {"confirm", "override"},
    "token-admin": PERMISSIONS["admin"],
}
"""An API token's scope (gateway.tokens) as the permissions of its user's role `token-<scope>`."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of `password` for the config's `password_hash`."""
    if not password:
        raise AuthError("the password is empty")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(users: list[User], username: str, password: str) -> User | None:
    """The user when name and password match, else None (same work either way)."""
    user = next((u for u in users if u.username == username), None)
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    return user if (user is not None and ok) else None


class LoginThrottle:
    """Failed logins per (client address, user name).

    After `max_failures` failures within `window_s`, `retry_after` says how many seconds are left
    until the oldest of them is `window_s` old; until then the login route refuses that pair
    without checking a password. A successful login clears the pair. Other user names and other
    addresses are not affected, so one guesser cannot lock everybody out.
    """

    MAX_KEYS = 10_000  # pairs remembered at most; the oldest are forgotten first

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, username: str) -> float:
        """Seconds until this pair may try again; 0 when it may now."""
        with self._lock:
            times = self._recent((address, username))
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[0] + self.window_s - self._clock())

    def failed(self, address: str, username: str) -> None:
        """Count a failed login."""
        with self._lock:
            key = (address, username)
            times = self._recent(key)
            times.append(self._clock())
            self._failures.pop(key, None)
            self._failures[key] = times  # newest last, so the oldest pairs go first
            while len(self._failures) > self.MAX_KEYS:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str, username: str) -> None:
        """Forget the pair's failures."""
        with self._lock:
            self._failures.pop((address, username), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self._clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        return times


def can(user: User | TokenUser | None, permission: str) -> bool:
    """Whether `user` holds `permission`."""
    if user is None:
        return False
    return permission in (PERMISSIONS.get(user.role) or TOKEN_PERMISSIONS[user.role])


def session_secret(http: HttpConfig) -> str:
    """The key that signs cookies: config value, config file, $REMAN_SESSION_SECRET, else ephemeral."""
    if http.session_secret is not None:
        return http.session_secret.get_secret_value()
    if http.session_secret_file:
        try:
            return Path(http.session_secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AuthError(
                f"cannot read session_secret_file {http.session_secret_file}: {exc}"
            ) from exc
    if os.environ.get(SESSION_SECRET_ENV):
        return os.environ[SESSION_SECRET_ENV]
    log.warning(
        "no session secret configured (http.session_secret_file or $%s): using an "
        "ephemeral one; every login ends when the gateway restarts",
        SESSION_SECRET_ENV,
    )
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------- per request


def credential(user: User) -> str:
    """A fingerprint of the user's password hash and role: a session lasts while both do."""
    return hashlib.sha256(f"{user.role}\0{user.password_hash}".encode()).hexdigest()


def start_session(request: Request, user: User) -> None:
    """Log `user` in: a fresh session, remembered in the store for `http.session_max_age_s`."""
    now = datetime.now(UTC)
    max_age_s = request.app.state.config.http.session_max_age_s
    session_id = secrets.token_urlsafe(32)
    request.app.state.store.add_session(
        session_id,
        user.username,
        credential(user),
        rfc3339(now),
        rfc3339(now + timedelta(seconds=max_age_s)),
    )
    request.session.clear()
    request.session["sid"] = session_id


def end_session(request: Request) -> None:
    """Log out: the session ends in the store (its cookie no longer works anywhere)."""
    session_id = request.session.get("sid")
    if session_id:
        request.app.state.store.end_session(session_id)
    request.session.clear()


def current_user(request: Request) -> User | None:
    """The logged-in user, or None: the session must last and the account be unchanged."""
    session_id = request.session.get("sid")
    if not isinstance(session_id, str):
        return None
    store = request.app.state.store
    row = store.session(session_id, utc_now())
    if row is None:
        return None
    users: list[User] = request.app.state.config.users
    user = next((u for u in users if u.username == row["username"]), None)
    if user is None or not secrets.compare_digest(credential(user), row["credential"]):
        store.end_session(session_id)  # the password or role changed, or the user is gone
        return None
    return user


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Dependency for every POST: 403 unless the form or header carries the session's token.
    A request with an API token carries no cookie a browser could send for someone else, so
    it needs none (the token itself is checked by `require`)."""
    if bearer_user(request) is not None:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(expected, sent):
        raise HTTPException(status_code=403, detail=Message("missing or invalid CSRF token"))


_UNREAD = object()


def bearer_user(request: Request) -> TokenUser | None:
    """The API token's user when an /api/ request carries `Authorization: Bearer`; None when
    it carries no Authorization; 401 when the token is malformed, unknown, revoked or expired."""
    header = request.headers.get("authorization")
    if header is None or not request.url.path.startswith("/api/"):
        return None
    seen = getattr(request.state, "token_user", _UNREAD)  # read once per request
    if seen is _UNREAD:
        scheme, _, text = header.partition(" ")
        seen = tokens.verify(request.app.state.store, text) if scheme.lower() == "bearer" else None
        request.state.token_user = seen
    user: TokenUser | None = seen  # type: ignore[assignment]  # _UNREAD was replaced above
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="invalid, expired or revoked API token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user


def request_user(request: Request) -> User | TokenUser | None:
    """Who makes the request: an API token's user, else the session's, else None."""
    return bearer_user(request) or current_user(request)


def require(permission: str):
    """Dependency factory: the token's or logged-in user holding `permission` (401 for a bad
    token, LoginRequired without a login, else 403)."""

    def dependency(request: Request) -> User | TokenUser:
        user = request_user(request)
        if user is None:
            raise LoginRequired("log in first")
        if not can(user, permission):
            raise HTTPException(
                status_code=403,
                detail=Message(
                    "your role ({role}) may not {permission}", role=user.role, permission=permission
                ),
            )
        return user

    return dependency
