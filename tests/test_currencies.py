"""Figures in the reporting currency: daily rates, fx_adjustment, constant-currency NRR."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.envelope import Source, parse_event
from ledger.event_log import EventLog
from simulator.stripe_account import BASIL
from tests.support.cli_runner import invoke, invoke_json
from tests.support.databases import TestDatabase
from tests.support.scenarios import ALL_SCENARIOS
from tests.support.signing import encode


async def append_s3_in_euros(event_log: EventLog) -> None:
    """S3 (100.00 -> 200.00 on 04-16 -> 150.00 on 05-01), billed in EUR."""
    scenario = ALL_SCENARIOS["S3"](BASIL)
    events = [
        parse_event(
            encode(e).replace(b'"currency": "usd"', b'"currency": "eur"'),
            account="default",
            source=Source.WEBHOOK,
        )
        for e in scenario.events
    ]
    await event_log.append(events)


def rates_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return str(path)


async def test_mrr_converts_at_each_days_rate_and_the_rest_is_fx_adjustment(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog, tmp_path: Path
) -> None:
    await append_s3_in_euros(event_log)
    csv = rates_file(tmp_path, "date,currency,rate\n2024-12-01,eur,1.10\n2025-04-10,eur,1.20\n")
    code, _out, err = await invoke(database, "fx", "import", csv)
    assert code == 0, err
    april = await invoke_json(database, "metrics", "--period", "2025-04")
    assert april["currency"] == "usd"
    assert april["mrr_start"] == "110.00"  # 100 EUR at 1.10 (the rate in force on 04-01)
    assert april["expansion"] == "120.00"  # 100 EUR at 1.20 (04-16)
    assert april["mrr_end"] == "240.00"  # 200 EUR at 1.20 (05-01)
    assert april["fx_adjustment"] == "10.00"  # the rate's own move, never an expansion
    assert april["nrr"] == "2.0000"  # constant currency: t0 rates on both sides


async def test_a_missing_rate_is_named_not_guessed(
    database: TestDatabase, engine: AsyncEngine, event_log: EventLog, tmp_path: Path
) -> None:
    await append_s3_in_euros(event_log)
    await invoke(
        database, "fx", "import", rates_file(tmp_path, "date,currency,rate\n2025-04-10,eur,1.2\n")
    )
    code, _out, err = await invoke(database, "metrics", "--period", "2025-04", "--json")
    assert code == 1
    assert "no EUR->USD rate on or before 2025-04-01" in err


async def test_a_malformed_rates_file_is_refused_with_its_line(
    database: TestDatabase, engine: AsyncEngine, tmp_path: Path
) -> None:
    csv = rates_file(tmp_path, "date,currency,rate\n2025-01-01,eur,1.1\n2025-13-01,eur,1.1\n")
    code, _out, err = await invoke(database, "fx", "import", csv)
    assert code == 2
    assert "rates.csv:3" in err
