"""Adding accounts to a gateway config file, keeping its comments and layout (ruamel round trip)."""

from __future__ import annotations

import io
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from gateway.auth import hash_password
from gateway.config import User
from gateway.errors import AccountError


def add_user(path: str | Path, username: str, role: str, password: str) -> bool:
    """Add `username` with an argon2 hash of `password` to the file's `users`; True when new.

    An existing user of that name gets the new password and role. The file is created when
    missing; every other line, comment included, stays as it was.
    """
    path = Path(path)
    try:
        user = User.model_validate(
            {"username": username, "password_hash": hash_password(password), "role": role}
        )
    except ValidationError as exc:
        raise AccountError(exc.errors(include_url=False)[0]["msg"]) from exc
    yaml = YAML(typ="rt")
    yaml.width = 4096  # keep each hash on one line
    data = _load(yaml, path)
    users = data.get("users")
    trailing = None
    if not isinstance(users, CommentedSeq) or (not users and users.fa.flow_style()):
        trailing = _pop_trailing(data, "users")
        users = CommentedSeq(list(users or []))
        data["users"] = users
    entry = CommentedMap(username=user.username, password_hash=user.password_hash, role=user.role)
    for i, existing in enumerate(users):
        if isinstance(existing, CommentedMap) and existing.get("username") == username:
            _set_trailing(entry, _pop_trailing(existing, list(existing)[-1]))
            users[i] = entry
            _dump(yaml, data, path)
            return False
    if users and isinstance(users[-1], CommentedMap):
        trailing = _pop_trailing(users[-1], list(users[-1])[-1]) or trailing
    _set_trailing(entry, trailing)
    users.append(entry)
    _dump(yaml, data, path)
    return True


def _pop_trailing(node: CommentedMap, key: str):
    """The comment or blank lines after `key`'s value (removed from there), or None."""
    item = node.ca.items.get(key)
    if not item or len(item) < 3 or item[2] is None:
        return None
    token, item[2] = item[2], None
    return token


def _set_trailing(entry: CommentedMap, token) -> None:
    """Put blank lines and comments that followed the list after its new last entry."""
    if token is not None:
        entry.ca.items["role"] = [None, None, token, None]


def _load(yaml: YAML, path: Path) -> CommentedMap:
    if not path.exists():
        return CommentedMap()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise AccountError(f"cannot read {path}: {exc}") from exc
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise AccountError(f"{path} is not a mapping of keys")
    return data


def _dump(yaml: YAML, data: CommentedMap, path: Path) -> None:
    buf = io.StringIO()
    yaml.dump(data, buf)
    try:
        path.write_text(buf.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise AccountError(f"cannot write {path}: {exc}") from exc
