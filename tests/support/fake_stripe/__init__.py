"""A fake Stripe API for backfill tests: real HTTP on loopback, Stripe's list semantics and
error shapes, over a Dataset built from a simulated StripeAccount.

    dataset = Dataset.from_account(account)
    with serve_fake_stripe(dataset, rate_limit_per_second=25) as fake:
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url}, ...)
"""

from tests.support.fake_stripe.api import FakeApi, LoggedRequest
from tests.support.fake_stripe.dataset import (
    EMBEDDED_LIMIT,
    EVENT_RETENTION,
    RESOURCES,
    CursorMissing,
    Dataset,
    Page,
)
from tests.support.fake_stripe.errors import Reply, StripeError
from tests.support.fake_stripe.server import API_KEY, FakeStripe, create_app, serve_fake_stripe

__all__ = [
    "API_KEY",
    "EMBEDDED_LIMIT",
    "EVENT_RETENTION",
    "RESOURCES",
    "CursorMissing",
    "Dataset",
    "FakeApi",
    "FakeStripe",
    "LoggedRequest",
    "Page",
    "Reply",
    "StripeError",
    "create_app",
    "serve_fake_stripe",
]
