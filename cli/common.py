"""What every command shares: the consoles, settings loading, and running async work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import engine_from_settings
from ledger.errors import LedgerUnavailable
from ledger.settings import ConfigError, Settings, describe, load_settings

# soft_wrap: a message is one line however narrow the terminal, so it can be grepped.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def load_cli_settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:  # names each variable, never its value
        errors.print(f"[red]invalid settings:[/red] {describe(exc)}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        errors.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` with an engine of its own, in an event loop of its own."""

    async def main() -> T:
        engine = engine_from_settings(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (LedgerUnavailable, OSError) as exc:
        errors.print(f"[red]database unreachable:[/red] {exc}")
        raise typer.Exit(1) from None
    except ConfigError as exc:  # a setting found unusable deep in the work: one line
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
