"""`stripe-ledger db create-service-role`, and serve's warning when it connects with more
power than it needs (PostgreSQL: as a superuser or the owner of the ledger's tables)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.common import console, errors, load_cli_settings, with_engine
from ledger.engine import create_engine, normalise_url
from ledger.logs import get_logger
from ledger.roles import RoleError, create_service_role, privilege_warning
from ledger.settings import Settings

log = get_logger(__name__)


def is_postgres_url(url: str) -> bool:
    try:
        return normalise_url(url).get_backend_name() == "postgresql"
    except ValueError:  # an unusable URL is reported by whatever uses it
        return False


def create_service_role_command(
    name: Annotated[str, typer.Argument(help="The role the service will connect as.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the role's password from stdin.")
    ] = False,
) -> None:
    """PostgreSQL: make a role that may append to the ledger and write the read models, but
    not rewrite, alter or drop them; run as the owner, again after changes (idempotent)."""
    settings = load_cli_settings()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password == "":
        errors.print("[red]--password-stdin read an empty password[/red]")
        raise typer.Exit(2)

    async def work(engine: AsyncEngine) -> str:
        async with engine.begin() as conn:
            return await create_service_role(conn, name, password)

    try:
        schema = with_engine(settings, work)
    except RoleError as exc:
        errors.print(f"[red]cannot make the service role:[/red] {exc}")
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:  # e.g. not allowed to create roles: PostgreSQL says why
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        errors.print(f"[red]cannot make the service role:[/red] {reason}")
        raise typer.Exit(1) from None
    console.print(
        f"role {name} may append to the ledger and write the read models in schema {schema}; "
        "serve with it in LEDGER_DATABASE_URL"
    )


def warn_when_privileged(settings: Settings) -> None:
    """One warning line when serving as a role that could disable the ledger's triggers or
    drop its tables. Never stops the start: a failing check is not a reason to refuse."""

    if not is_postgres_url(settings.database_url):
        return  # SQLite has no roles

    async def check() -> str | None:
        # Briefly: a database down at start-up is reported elsewhere, not waited on here.
        engine = create_engine(
            settings.database_url,
            schema=settings.ledger_database_schema,
            connect_args={"timeout": 2},
        )
        try:
            async with engine.connect() as conn:
                return await privilege_warning(conn)
        finally:
            await engine.dispose()

    try:
        reason = asyncio.run(check())
    except (SQLAlchemyError, OSError):
        return
    if reason is not None:
        log.warning(
            "database_role_can_rewrite_the_ledger",
            reason=reason,
            advice="serve as a role made by `stripe-ledger db create-service-role` "
            "(docs/ledger.md)",
        )
