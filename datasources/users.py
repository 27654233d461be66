"""Users of the wall and the tablet: a role and a scope (a centre whose subtree they see).

Kept in the registry database (table `users`, declared in datasources.registry with the other
tables), passwords hashed with Argon2id (argon2-cffi, the reference binding). `scope` is a plain
centre code, not a foreign key, so re-importing the registry never deletes accounts; a user whose
scope no longer exists sees nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from datasources.migrations import ensure_schema
from datasources.registry import UserRow, session_scope
from datasources.validate import is_code

ROLES = ("duty", "leader", "admin")  # 值班员 · 领导 · 管理员
NAME_RE = re.compile(r"^[\w.@-]{1,64}$")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
# verifying against this keeps a wrong user name as slow as a wrong password
_DUMMY_HASH = _HASHER.hash("not-a-password-of-anyone")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    scope: str
    # changes whenever the password does: sessions signed with an older one end
    epoch: str


class UserError(ValueError):
    """A user command that cannot be carried out (the message says why)."""


def _user(row: UserRow) -> User:
    epoch = hashlib.sha256(row.password_hash.encode()).hexdigest()[:16]
    return User(row.name, row.role, row.scope, epoch)


def add_user(engine: Engine, name: str, password: str, role: str, scope: str,
             centres: set[str] | None = None, replace: bool = False) -> User:
    if not NAME_RE.match(name):
        raise UserError("user names are 1-64 letters, digits, . _ @ -")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if not is_code(scope):
        raise UserError("a scope is a centre code: 1-32 of A-Z a-z 0-9 _ -")
    if centres is not None and scope not in centres:
        raise UserError(f"unknown centre {scope!r}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"passwords need at least {MIN_PASSWORD} characters")
    ensure_schema(engine)
    with session_scope(engine) as s:
        row = s.get(UserRow, name)
        if row is not None and not replace:
            raise UserError(f"user {name!r} exists (use --replace to change it)")
        if row is None:
            row = UserRow(name=name, created=datetime.now(UTC))
            s.add(row)
        row.role, row.scope, row.password_hash = role, scope, _HASHER.hash(password)
        return _user(row)


def remove_user(engine: Engine, name: str) -> bool:
    ensure_schema(engine)
    with session_scope(engine) as s:
        row = s.get(UserRow, name)
        if row is None:
            return False
        s.delete(row)
        return True


def list_users(engine: Engine) -> list[User]:
    ensure_schema(engine)
    with Session(engine) as s:
        return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]


def get_user(engine: Engine, name: str) -> User | None:
    with Session(engine) as s:
        row = s.get(UserRow, name)
        return _user(row) if row else None


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(engine: Engine, name: str, password: str,
                 run: Callable[..., Any] | None = None) -> User | None:
    """The user when the password matches, else None (same cost for unknown names).

    `run(fn, *args)` runs the Argon2 check (~0.2 s of CPU): the web server passes one that
    runs it off its event loop (dashboard/hashing.py); the default runs it here."""
    with Session(engine) as s:
        row = s.get(UserRow, name) if NAME_RE.match(name or "") else None
        stored = row.password_hash if row else _DUMMY_HASH
        user = _user(row) if row else None
    ok = (run or _call)(_verify, stored, password)
    return user if ok and user is not None else None


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
