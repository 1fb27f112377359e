"""The users table: parameterised SQL only, each function runs on a cursor it is given."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import pymysql
from pymysql.constants import ER

NAME_MAX_CHARS = 64
EMAIL_MAX_CHARS = 254
LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100

User = Dict[str, Any]


def to_json(row: Dict[str, Any]) -> User:
    """Return a row as the API shows it, created_at in ISO 8601 UTC."""
    created_at = row["created_at"]
    if isinstance(created_at, datetime):
        created_at = created_at.replace(tzinfo=timezone.utc).isoformat()
    return {"id": int(row["id"]), "name": row["name"], "email": row["email"], "created_at": created_at}


def _missing_table(exc: pymysql.err.ProgrammingError) -> bool:
    """Tell whether exc says the table does not exist (a replica before the first write)."""
    return bool(exc.args) and exc.args[0] == ER.NO_SUCH_TABLE


def create(cursor: Any, name: str, email: Optional[str]) -> User:
    """Insert a user and return it as stored."""
    cursor.execute("INSERT INTO users (name, email) VALUES (%s, %s)", (name, email))
    cursor.execute("SELECT id, name, email, created_at FROM users WHERE id = %s", (cursor.lastrowid,))
    return to_json(cursor.fetchone())


def list_newest(cursor: Any, limit: int) -> List[User]:
    """Return up to limit users, newest first."""
    try:
        cursor.execute("SELECT id, name, email, created_at FROM users ORDER BY id DESC LIMIT %s", (limit,))
    except pymysql.err.ProgrammingError as exc:
        if _missing_table(exc):
            return []
        raise
    return [to_json(row) for row in cursor.fetchall()]


def get(cursor: Any, user_id: int) -> Optional[User]:
    """Return one user, or None."""
    try:
        cursor.execute("SELECT id, name, email, created_at FROM users WHERE id = %s", (user_id,))
    except pymysql.err.ProgrammingError as exc:
        if _missing_table(exc):
            return None
        raise
    row = cursor.fetchone()
    return None if row is None else to_json(row)


def delete(cursor: Any, user_id: int) -> bool:
    """Delete one user; tell whether it existed."""
    return cursor.execute("DELETE FROM users WHERE id = %s", (user_id,)) > 0
