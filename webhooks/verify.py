"""Checking `Stripe-Signature` over the raw body, with the `stripe` library.

Several secrets may be configured (a rotation, or Dashboard and `stripe listen` side by
side): a delivery passes when any of them signs it. Stripe's error texts are mapped here,
in one place, to one-line reasons that are safe to return and never echo a secret.
https://docs.stripe.com/webhooks#verify-events
"""

from __future__ import annotations

from collections.abc import Sequence

import stripe

# Stripe's header is `t=...,v1=...` with one v1 per active signing secret (two or three
# during a rotation): about 150 bytes. Parsing is linear in the header, and the `stripe`
# library compares every v1 against every secret, so a header of a million entries held
# the event loop for seconds; both are bounded before anything parses it.
MAX_SIGNATURE_HEADER_BYTES = 8 * 1024
MAX_SIGNATURE_ENTRIES = 32


class BadSignature(Exception):
    """The delivery is not proven to come from Stripe; the message is safe to return."""


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int
) -> None:
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    if len(header) > MAX_SIGNATURE_HEADER_BYTES:
        raise BadSignature(
            f"Stripe-Signature header is longer than {MAX_SIGNATURE_HEADER_BYTES} bytes"
        )
    if header.count(",") >= MAX_SIGNATURE_ENTRIES:
        raise BadSignature(f"Stripe-Signature header has more than {MAX_SIGNATURE_ENTRIES} entries")
    try:
        body = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("body is not UTF-8, so it cannot be a signed Stripe event") from None
    reason = "no signature matches the endpoint's signing secret"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            message = str(exc.user_message or exc)
            if "tolerance" in message:
                # The signature matched, so the delivery is genuine but too old to accept:
                # a replay, or a clock far off.
                raise BadSignature(
                    f"signature timestamp is older than the {tolerance} s tolerance"
                ) from None
            if "Unable to extract" in message:
                raise BadSignature("malformed Stripe-Signature header") from None
            if "expected scheme" in message:
                raise BadSignature("Stripe-Signature header has no v1 signature") from None
    raise BadSignature(reason)
