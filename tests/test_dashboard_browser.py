"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): sign in, see
the charts and the figures `metrics --json` gives, click a month, see its movements, sign
out; the page's Content-Security-Policy blocks nothing it needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.support.databases import TestDatabase
from tests.support.processes import environment, run, serving

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "dash_" + "B9n8M7b6V5c4X3z2"
FROM, TO = "2024-02", "2024-05"


T = TypeVar("T")


def in_browser(drive: Callable[[Page], T]) -> T:
    """Run `drive` on a fresh page of a headless Chromium, in a thread of its own:
    Playwright's sync API runs its own event loop, and the test's fixtures have one."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")

    def session() -> T:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                return drive(browser.new_page())
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(session).result(timeout=180)


def _metrics(env: dict[str, str], cwd: Path, month: str) -> dict[str, object]:
    done = run(["metrics", "--period", month, "--json"], env, cwd)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_a_finance_lead_signs_in_reads_the_months_and_opens_one(
    database: TestDatabase, tmp_path: Path
) -> None:
    env = environment(database, LEDGER_DASHBOARD_TOKEN=TOKEN, LEDGER_LOG_LEVEL="warning")
    filled = run(
        ["simulate", "--customers", "30", "--months", "6", "--seed", "2", "--into-ledger"],
        env,
        tmp_path,
    )
    assert filled.returncode == 0, filled.stderr
    expected = {month: _metrics(env, tmp_path, month) for month in ("2024-02", "2024-05")}

    with serving(env, tmp_path) as base:

        def drive(page: Page) -> dict[str, object]:
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{base}/?from={FROM}&to={TO}")
            refused = page.content()
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.goto(f"{base}/?from={FROM}&to={TO}")
            shown = {
                month: page.locator(f'table[data-table="mrr"] tr:has(td:text-is("{month}"))')
                .locator('td[data-key="mrr_end"]')
                .inner_text()
                for month in expected
            }
            charts = page.locator("svg.chart").count()
            bars = page.locator("#movements svg.chart rect[data-series=new]").count()
            page.locator('#movements g.month[data-month="2024-03"]').first.click()
            page.wait_for_selector("#month-movements")
            listed = page.locator("#month-movements").inner_text()
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            page.click("text=Sign out")
            page.goto(f"{base}/?from={FROM}&to={TO}")
            signed_out = page.content()
            return {
                "console": console,
                "signed_out": signed_out,
                "refused": refused,
                "shown": shown,
                "charts": charts,
                "bars": bars,
                "listed": listed,
            }

        seen = in_browser(drive)

    assert "Dashboard token" in str(seen["refused"]) and "mrr_end" not in str(seen["refused"])
    assert "Dashboard token" in str(seen["signed_out"])
    assert "mrr_end" not in str(seen["signed_out"])
    assert not [m for m in seen["console"] if "Content Security Policy" in m]  # type: ignore[attr-defined]
    assert isinstance(seen["charts"], int) and seen["charts"] >= 6
    assert seen["bars"] == 4  # one "new" bar a month
    shown = seen["shown"]
    assert isinstance(shown, dict)
    for month, document in expected.items():
        figure = Decimal(shown[month].replace("$", "").replace(",", ""))
        assert figure == Decimal(str(document["mrr_end"]))
    listed = str(seen["listed"])
    assert "Movements in 2024-03" in listed and "evt_" in listed and "cus_" in listed
