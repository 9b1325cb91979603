"""Dashboard sessions: a login opens a session that expires after 12 hours and that signing
out ends in every serving process; wrong tokens are rate-limited per address; a short token
stops start-up; the sign-in form is read with its limit enforced while it streams in; and
every read-side answer carries no-store, a Content-Security-Policy and X-Frame-Options."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import time_machine
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboard.auth import COOKIE
from dashboard.headers import CONTENT_SECURITY_POLICY
from dashboard.login import FORM_LIMIT
from dashboard.throttle import FailedAttempts
from tests.conftest import make_settings
from tests.support.app_client import app_client, clients_from
from tests.support.databases import TestDatabase, sqlite_database
from tests.support.processes import environment, run, server_process
from tests.support.tcp_proxy import TcpProxy
from tests.test_reliability_outage import through
from tests.test_service_role import _admin, as_role

TOKEN = "dash_" + "S3ss10nT0k3nV4lu3x"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAGE = "/?from=2024-01&to=2024-02"


@pytest.fixture
async def client(database: TestDatabase, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await client.post("/login", data={"token": token})


def carrying(cookie: str) -> dict[str, str]:
    """Headers sending `cookie` as the session, whatever the client's own jar holds."""
    return {"Cookie": f"{COOKIE}={cookie}"}


def cookie_of(response: httpx.Response) -> str:
    value = response.cookies.get(COOKIE)
    assert value, response.headers
    return value


async def test_a_session_opens_the_dashboard_until_it_is_12_hours_old(
    client: httpx.AsyncClient,
) -> None:
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        assert (await sign_in(client)).status_code == 303
    with time_machine.travel(start + timedelta(hours=12) - timedelta(seconds=1), tick=False):
        assert (await client.get(PAGE)).status_code == 200
    with time_machine.travel(start + timedelta(hours=12), tick=False):
        assert (await client.get(PAGE)).status_code == 401


async def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(
    client: httpx.AsyncClient,
) -> None:
    copy = cookie_of(await sign_in(client))
    assert (await client.get(PAGE)).status_code == 200
    signed_out = await client.post("/logout")
    assert signed_out.status_code == 303
    assert (await client.get(PAGE, headers=carrying(copy))).status_code == 401


async def test_a_session_ended_in_one_serving_process_is_refused_by_another(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings) as first, app_client(settings) as second:
        cookie = cookie_of(await sign_in(first))
        assert (await second.get(PAGE, headers=carrying(cookie))).status_code == 200
        await first.post("/logout", headers=carrying(cookie))
        assert (await second.get(PAGE, headers=carrying(cookie))).status_code == 401


def test_signing_out_of_serve_with_two_workers_ends_the_session_in_both(
    database: TestDatabase, tmp_path: Path
) -> None:
    env = environment(database, LEDGER_DASHBOARD_TOKEN=TOKEN, LEDGER_LOG_LEVEL="warning")
    with server_process(env, tmp_path, "--workers", "2") as server:

        def statuses(cookie: str, count: int) -> set[int]:
            # A connection of its own for each request, so that both workers answer some.
            return {
                httpx.get(f"{server.base}{PAGE}", headers=carrying(cookie), timeout=30).status_code
                for _ in range(count)
            }

        signed_in = httpx.post(f"{server.base}/login", data={"token": TOKEN}, timeout=30)
        cookie = cookie_of(signed_in)
        assert statuses(cookie, 10) == {200}
        signed_out = httpx.post(f"{server.base}/logout", headers=carrying(cookie), timeout=30)
        assert signed_out.status_code == 303
        assert statuses(cookie, 20) == {401}


async def test_without_the_database_a_session_gets_503_and_signing_out_says_it_did_not(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase
) -> None:
    target = make_url(postgres_database.url)
    with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        settings = make_settings(through(proxy, postgres_database), LEDGER_DASHBOARD_TOKEN=TOKEN)
        async with app_client(settings) as client:
            cookie = cookie_of(await sign_in(client))
            proxy.cut()
            assert (await client.get(PAGE)).status_code == 503
            assert (await client.post("/logout")).status_code == 503
            proxy.restore()
            assert (await client.post("/logout")).status_code == 303
            assert (await client.get(PAGE, headers=carrying(cookie))).status_code == 401


async def test_other_sessions_outlive_one_signing_out(client: httpx.AsyncClient) -> None:
    kept = cookie_of(await sign_in(client))
    ended = cookie_of(await sign_in(client))
    await client.post("/logout", headers=carrying(ended))
    assert (await client.get(PAGE, headers=carrying(kept))).status_code == 200


async def test_signing_out_works_as_the_postgresql_service_role(
    postgres_engine: AsyncEngine, postgres_database: TestDatabase, tmp_path: Path
) -> None:
    """The role made by the command, in a process of its own, may record an ended session."""
    name = f"svc_{uuid.uuid4().hex[:12]}"
    made = run(["db", "create-service-role", name], environment(postgres_database), tmp_path)
    assert made.returncode == 0, made.stderr
    try:
        settings = make_settings(as_role(postgres_database, name), LEDGER_DASHBOARD_TOKEN=TOKEN)
        async with app_client(settings) as client:
            cookie = cookie_of(await sign_in(client))
            assert (await client.post("/logout")).status_code == 303
            assert (await client.get(PAGE, headers=carrying(cookie))).status_code == 401
    finally:
        await _admin(postgres_database, f"DROP OWNED BY {name}; DROP ROLE {name}")


async def test_the_old_fixed_cookie_opens_nothing(client: httpx.AsyncClient) -> None:
    fixed = hmac.new(TOKEN.encode(), b"stripe-ledger dashboard session v1", hashlib.sha256)
    response = await client.get(PAGE, headers=carrying(fixed.hexdigest()))
    assert response.status_code == 401


async def test_a_cookie_made_with_another_token_opens_nothing(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    other = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN + "-rotated")
    async with app_client(other) as before:
        cookie = cookie_of(await sign_in(before, TOKEN + "-rotated"))
    async with app_client(make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)) as after:
        assert (await after.get(PAGE, headers=carrying(cookie))).status_code == 401


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_session_cookie_is_http_only_same_site_strict_and_expires(
    database: TestDatabase, engine: AsyncEngine, scheme: str
) -> None:
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with app_client(settings, base_url=f"{scheme}://ledger.test") as client:
        header = (await sign_in(client)).headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "samesite", "max-age", "path"} <= attributes
    assert "samesite=strict" in header.lower() and "max-age=43200" in header.lower()
    assert ("secure" in attributes) == (scheme == "https")
    assert TOKEN not in header


async def test_ten_wrong_tokens_a_minute_from_one_address_then_429_with_retry_after(
    database: TestDatabase, engine: AsyncEngine
) -> None:
    settings = make_settings(database, LEDGER_DASHBOARD_TOKEN=TOKEN)
    async with clients_from(settings, addresses=["203.0.113.7", "198.51.100.2"]) as clients:
        guesser, bystander = clients
        for n in range(10):
            assert (await sign_in(guesser, f"guess-{n}")).status_code == 401
        for attempt in (
            sign_in(guesser, TOKEN),  # even the right token, while the address is held
            guesser.get("/api/v1/openapi.json", headers={"Authorization": "Bearer guess"}),
            guesser.get("/api/v1/openapi.json", headers=AUTH),
        ):
            held = await attempt
            assert held.status_code == 429, held.text
            assert 1 <= int(held.headers["retry-after"]) <= 60
        assert (await sign_in(bystander)).status_code == 303


async def test_wrong_bearer_tokens_count_as_failed_attempts(client: httpx.AsyncClient) -> None:
    for n in range(10):
        wrong = {"Authorization": f"Bearer guess-{n}"}
        assert (await client.get("/api/v1/openapi.json", headers=wrong)).status_code == 401
    assert (await sign_in(client)).status_code == 429


async def test_a_signed_in_browser_keeps_reading_while_its_address_is_held(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client)
    for n in range(11):
        await client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer guess-{n}"})
    assert (await client.get(PAGE)).status_code == 200


def test_failed_attempts_leave_the_count_once_a_minute_old() -> None:
    now = [1000.0]
    attempts = FailedAttempts(max_failures=10, window_seconds=60, clock=lambda: now[0])
    for _ in range(10):
        attempts.failed("203.0.113.7")
        now[0] += 1
    assert attempts.retry_after("203.0.113.7") == 50  # the first failure leaves at 1060
    now[0] = 1060.0
    assert attempts.retry_after("203.0.113.7") is None


def test_a_dashboard_token_shorter_than_16_characters_stops_serve_with_one_line(
    tmp_path: Path,
) -> None:
    short = "fifteen-chars15"
    env = environment(sqlite_database(tmp_path), LEDGER_DASHBOARD_TOKEN=short)
    done = run(["serve", "--port", "1"], env, tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "LEDGER_DASHBOARD_TOKEN" in line and "16 characters" in line
    assert short not in done.stderr + done.stdout


async def test_a_huge_sign_in_body_is_cut_at_the_limit_without_being_read(
    client: httpx.AsyncClient,
) -> None:
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b"token="
        for _ in range(400 * 1024):  # 400 MB, as the attacker sent
            pulled += 1
            yield b"x" * 1024

    response = await client.post(
        "/login", content=body(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert pulled <= FORM_LIMIT // 1024 + 1


async def test_a_sign_in_body_declared_too_large_is_refused_before_a_byte_is_read(
    client: httpx.AsyncClient,
) -> None:
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * 1024

    response = await client.post(
        "/login", content=body(), headers={"Content-Length": str(100 * 1024)}
    )
    assert response.status_code == 413 and pulled == 0


@pytest.mark.parametrize(
    ("path", "authenticated"),
    [
        (PAGE, True),
        (PAGE, False),
        ("/login", False),
        ("/dashboard.csv?table=mrr", True),
        ("/api/v1/metrics?period=2024-01", True),
        ("/api/v1/metrics?period=2024-01", False),
    ],
)
async def test_read_side_answers_are_not_stored_framed_or_allowed_script(
    client: httpx.AsyncClient, path: str, authenticated: bool
) -> None:
    response = await client.get(path, headers=AUTH if authenticated else {})
    assert response.status_code == (200 if authenticated or path == "/login" else 401)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # no script is allowed from anywhere


async def test_the_dashboard_page_has_no_inline_script_for_the_policy_to_block(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get(PAGE, headers=AUTH)).text
    assert "<script" not in page.lower()
    assert re.search(r"\son[a-z]+\s*=", page, flags=re.IGNORECASE) is None  # onclick=, onchange=
