"""Dashboard sessions: the login cookie names a random session and when it was issued, under
a MAC keyed by the dashboard token. A session lasts SESSION_SECONDS; signing out ends it in
every serving process, by a row in `dashboard_sessions_ended` that they all read."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import dialect_insert, write_transaction
from ledger.errors import LedgerUnavailable
from ledger.schema import dashboard_sessions_ended

SESSION_SECONDS: Final = 12 * 3600
# A clock a little ahead on another worker must not make its fresh cookies look forged.
_CLOCK_SKEW_SECONDS: Final = 60
_LABEL: Final = b"stripe-ledger dashboard session v2"
_COOKIE_SHAPE: Final = re.compile(r"([A-Za-z0-9_-]{22,64})\.(\d{1,12})\.([0-9a-f]{64})")

# A row of dashboard_sessions_ended (migration 0011) outlives its session by no more than
# SESSION_SECONDS: after that the cookie has expired anyway, and a later sign-out deletes it.


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    issued_at: int  # Unix seconds

    def expires_at(self) -> int:
        return self.issued_at + SESSION_SECONDS


def _mac(token: str, session_id: str, issued_at: int) -> str:
    key = hmac.new(token.encode(), _LABEL, hashlib.sha256).digest()
    return hmac.new(key, f"{session_id}.{issued_at}".encode(), hashlib.sha256).hexdigest()


def issue(token: str, now: datetime) -> str:
    """A new session's cookie value. It holds no secret: the MAC proves only that whoever
    held the token made it, so changing the token ends every session."""
    session_id, issued_at = secrets.token_urlsafe(24), int(now.timestamp())
    return f"{session_id}.{issued_at}.{_mac(token, session_id, issued_at)}"


def read(cookie: str, token: str, now: datetime) -> Session | None:
    """The session `cookie` names if it is genuine (made with this token) and unexpired."""
    shape = _COOKIE_SHAPE.fullmatch(cookie)
    if shape is None:
        return None
    session_id, issued_at, mac = shape[1], int(shape[2]), shape[3]
    if not hmac.compare_digest(mac, _mac(token, session_id, issued_at)):
        return None
    session = Session(session_id, issued_at)
    moment = int(now.timestamp())
    if issued_at > moment + _CLOCK_SKEW_SECONDS or session.expires_at() <= moment:
        return None
    return session


async def has_ended(engine: AsyncEngine, session: Session) -> bool:
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                select(dashboard_sessions_ended.c.session_id).where(
                    dashboard_sessions_ended.c.session_id == session.session_id
                )
            )
    except (SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailable(f"sessions unreadable ({type(exc).__name__})") from None
    return found is not None


async def end(engine: AsyncEngine, session: Session, now: datetime) -> None:
    """Record the session as ended, and forget the sessions that have expired since."""
    table = dashboard_sessions_ended
    try:
        async with write_transaction(engine) as conn:
            insert = dialect_insert(conn, table).values(session_id=session.session_id, ended_at=now)
            await conn.execute(insert.on_conflict_do_nothing())
            expired = now - timedelta(seconds=SESSION_SECONDS + _CLOCK_SKEW_SECONDS)
            await conn.execute(delete(table).where(table.c.ended_at < expired))
    except (SQLAlchemyError, OSError) as exc:
        raise LedgerUnavailable(f"session not ended ({type(exc).__name__})") from None


def now_utc() -> datetime:
    return datetime.now(UTC)
