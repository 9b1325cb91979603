"""Customers, including the bare object Stripe sends for a deleted customer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ._read import (
    StripeJson,
    currency_code,
    flag,
    metadata,
    required_id,
    text,
    time,
)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str | None
    name: str | None
    created: datetime | None
    currency: str | None
    deleted: bool
    livemode: bool | None
    metadata: Mapping[str, str] = field(hash=False)


def read_customer(obj: StripeJson) -> Customer:
    """Read a customer; a deleted one is only `{id, object, deleted: true}`."""
    return Customer(
        id=required_id(obj, "customer"),
        email=text(obj.get("email")),
        # Since 2025-09-30.clover `name` may be derived from `business_name` or
        # `individual_name`; fall back to them when it is empty
        # (https://docs.stripe.com/changelog/clover/2025-09-30/customer-business-individual-names).
        name=text(obj.get("name"))
        or text(obj.get("business_name"))
        or text(obj.get("individual_name")),
        created=time(obj.get("created"), field="created"),
        currency=currency_code(obj.get("currency")),
        deleted=obj.get("deleted") is True,
        livemode=flag(obj.get("livemode")),
        metadata=metadata(obj.get("metadata")),
    )
