"""The simulator ships its own copy of the real-shaped Stripe objects; it must not drift."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_templates_equal_the_shared_fixtures() -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "simulator-templates"))
    packaged = (ROOT / "simulator" / "templates" / "templates.json").read_text()
    assert packaged == script["rendered"](), "run scripts/simulator-templates"
