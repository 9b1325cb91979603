"""`make run` (scripts/run) on a fresh checkout: it writes a local signing secret and
STRIPE_MODE=test to .env, so the local account refuses live events instead of mixing them
into its test figures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx

from tests.support.processes import ServerProcess, free_port, start_command
from tests.support.signing import encode, fresh_id, signed
from tests.support.stripe_fixtures import event_2020

REPO = Path(__file__).resolve().parent.parent


def checkout(tmp_path: Path) -> Path:
    """The script and the venv it runs, without the developer's .env or data folder."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "run", tmp_path / "scripts" / "run")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    return tmp_path


def run_script(root: Path, port: int) -> ServerProcess:
    # No Stripe CLI on this PATH: the script generates the secret itself.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "PORT": str(port)}
    return start_command([str(root / "scripts" / "run")], env, root, port, log_name="run")


def delivery(livemode: bool, secret: str) -> tuple[bytes, dict[str, str]]:
    document = fresh_id(event_2020("invoice_paid"))
    document["livemode"] = livemode
    body = encode(document)
    return body, signed(body, secret)


def test_make_run_writes_stripe_mode_test_beside_its_generated_secret(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    assert not os.path.exists(root / ".env")
    server = run_script(root, free_port())
    try:
        lines = dict(line.split("=", 1) for line in (root / ".env").read_text().splitlines())
        secret = lines["STRIPE_WEBHOOK_SECRET"]
        answers = {}
        for livemode in (False, True):
            body, headers = delivery(livemode, secret)
            answers[livemode] = httpx.post(
                f"{server.base}/webhooks/stripe", content=body, headers=headers, timeout=10
            )
    finally:
        server.stop()
    assert lines["STRIPE_MODE"] == "test"
    assert answers[False].status_code == 200
    assert answers[True].status_code == 400
    assert "live-mode event sent to a test-mode account" in answers[True].json()["error"]
