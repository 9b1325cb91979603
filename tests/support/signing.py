"""Signing webhook deliveries exactly as Stripe does, and building distinct events."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import stripe

SECRET = "whsec_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
OTHER_SECRET = "whsec_rotated_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4"


def signature_header(body: bytes | str, secret: str = SECRET, timestamp: int | None = None) -> str:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    header: str = stripe.WebhookSignature.generate_signature_header(
        text, secret, timestamp=timestamp if timestamp is not None else int(time.time())
    )
    return header


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Stripe-Signature": signature_header(body, secret, timestamp),
        "Content-Type": "application/json",
    }


def encode(event: dict[str, Any]) -> bytes:
    """Stripe's own formatting: pretty-printed JSON with two-space indents."""
    return json.dumps(event, indent=2).encode()


def fresh_id(event: dict[str, Any]) -> dict[str, Any]:
    """The fixture files share event ids; give this one its own."""
    event["id"] = f"evt_{uuid.uuid4().hex[:24]}"
    return event


def envelope(
    obj: dict[str, Any],
    event_type: str,
    *,
    api_version: str = "2025-03-31.basil",
    created: int | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """A webhook envelope around a current-layout object, shaped like Stripe's."""
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": api_version,
        "created": created if created is not None else int(time.time()),
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
