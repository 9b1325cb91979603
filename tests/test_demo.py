"""`stripe-ledger demo`: a simulated account up to today in a SQLite ledger of its own, and a
table of its last 12 months that says what `metrics --json` says."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from projections.periods import add_months, month_start
from tests.support.cli_runner import invoke
from tests.support.databases import TestDatabase

ROW = re.compile(r"^│ (\d{4}-\d{2}) +│ ([-\d,.]+) +│")


async def test_the_demo_prints_the_last_12_months_as_metrics_computes_them(
    database: TestDatabase, tmp_path: Path
) -> None:
    demo_db = tmp_path / "demo.sqlite3"
    code, out, err = await invoke(
        database, "demo", "--customers", "40", "--months", "14", "--database", str(demo_db)
    )
    assert code == 0, err
    rows = [m.groups() for line in out.splitlines() if (m := ROW.match(line))]
    this_month = month_start(datetime.now(UTC))
    assert [month for month, _ in rows] == [
        add_months(this_month, -n).strftime("%Y-%m") for n in range(12, 0, -1)
    ]
    demo_env = {"LEDGER_DATABASE_URL": f"sqlite+aiosqlite:///{demo_db}"}
    for month, mrr in (rows[0], rows[-1]):
        code, document, err = await invoke(
            database, "metrics", "--period", month, "--json", extra_env=demo_env
        )
        assert code == 0, err
        assert Decimal(mrr.replace(",", "")) == Decimal(json.loads(document)["mrr_end"])
    assert Decimal(rows[-1][1].replace(",", "")) > 0


async def test_running_the_demo_again_starts_from_nothing(
    database: TestDatabase, tmp_path: Path
) -> None:
    demo_db = tmp_path / "demo.sqlite3"
    args = ("demo", "--customers", "5", "--months", "13", "--database", str(demo_db))
    first = await invoke(database, *args)
    second = await invoke(database, *args)
    assert first[0] == second[0] == 0
    assert first[1] == second[1]


async def test_the_demo_refuses_to_replace_a_real_ledger(
    database: TestDatabase, tmp_path: Path
) -> None:
    real = tmp_path / "ledger.sqlite3"
    real_ledger = TestDatabase("sqlite", f"sqlite+aiosqlite:///{real}", None)
    assert (await invoke(real_ledger, "db", "upgrade"))[0] == 0
    before = real.read_bytes()
    code, _, err = await invoke(database, "demo", "--customers", "5", "--database", str(real))
    assert code == 2
    assert "not make (a real ledger?)" in err and len(err.strip().splitlines()) == 1
    assert real.read_bytes() == before


async def test_the_demo_refuses_to_replace_a_file_that_is_not_a_database(
    database: TestDatabase, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code, _, err = await invoke(database, "demo", "--customers", "5", "--database", str(notes))
    assert code == 2 and "not a SQLite database" in err and len(err.strip().splitlines()) == 1
    assert notes.read_text() == "my notes\n"


async def test_the_demo_replaces_a_ledger_it_made(database: TestDatabase, tmp_path: Path) -> None:
    """A smaller demo run first, at the same path, leaves nothing behind."""
    replaced, fresh = tmp_path / "demo.sqlite3", tmp_path / "fresh.sqlite3"
    for path, customers in ((replaced, "5"), (replaced, "8"), (fresh, "8")):
        code, _, err = await invoke(
            database, "demo", "--months", "13", "--customers", customers, "--database", str(path)
        )
        assert code == 0, err
    stats = []
    for path in (replaced, fresh):
        env = {"LEDGER_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
        code, out, err = await invoke(database, "ledger", "stats", "--json", extra_env=env)
        assert code == 0, err
        stats.append({k: json.loads(out)[k] for k in ("events", "first_position", "last_position")})
    assert stats[0] == stats[1]
