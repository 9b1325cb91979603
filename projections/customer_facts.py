"""One customer's ledger events read into typed facts, in a fixed order.

Each fact keeps the event that revealed it (its position, id and `created`), so every
derived row can point back to the ledger. Order is by business time with a fixed
tie-break (the object's own state, then the event id), never by arrival.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.event_log import StoredEvent
from ledger.logs import get_logger
from projections.read_events import Evidence, ReadEvent, read_events
from projections.stripe_fields import Customer, Discount, Invoice, StripeRecord, Subscription

log = get_logger("projections")

# Within one second, Stripe's own lifecycle tells which state came later.
_TYPE_RANK = {"created": 0, "deleted": 2}
STATUS_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "canceled": 5,
    "incomplete_expired": 5,
}
_NO_PERIOD = datetime.min.replace(tzinfo=UTC)
INVOICE_STATUS_RANK = {"draft": 0, "open": 1, "paid": 2, "void": 2, "uncollectible": 2}


@dataclass(frozen=True, slots=True)
class SubscriptionSnapshot:
    subscription: Subscription
    evidence: Evidence
    event_type: str

    @property
    def sort_key(self) -> tuple[datetime, int, datetime, int, str]:
        """Stripe's order of a subscription's states. Within one second the object's own
        state decides: its lifecycle, then its period (a test clock advanced by months sends
        every renewal in the same second), then its status."""
        suffix = self.event_type.rsplit(".", 1)[-1]
        return (
            self.evidence.created,
            _TYPE_RANK.get(suffix, 1),
            self.subscription.current_period_start or _NO_PERIOD,
            STATUS_RANK.get(self.subscription.status or "", 0),
            self.evidence.event_id,
        )


@dataclass(frozen=True, slots=True)
class DiscountFact:
    discount: Discount
    evidence: Evidence
    deleted: bool


@dataclass(frozen=True, slots=True)
class InvoiceFact:
    invoice: Invoice
    evidence: Evidence

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        rank = INVOICE_STATUS_RANK.get(self.invoice.status or "", 0)
        return (self.evidence.created, rank, self.evidence.event_id)


@dataclass
class CustomerFacts:
    account: str
    customer_id: str
    customer: Customer | None = None
    customer_evidence: Evidence | None = None
    deleted_at: datetime | None = None
    subscriptions: dict[str, list[SubscriptionSnapshot]] = field(default_factory=dict)
    discounts: list[DiscountFact] = field(default_factory=list)
    invoices: dict[str, list[InvoiceFact]] = field(default_factory=dict)
    unreadable: list[Evidence] = field(default_factory=list)
    first_seen: datetime | None = None  # the first event naming this customer

    def latest_invoices(self) -> list[Invoice]:
        return [facts[-1].invoice for facts in self.invoices.values()]


def read_customer_facts(
    account: str, customer_id: str, events: Iterable[StoredEvent]
) -> CustomerFacts:
    return customer_facts_of(account, customer_id, read_events(events))


def customer_facts_of(account: str, customer_id: str, events: Iterable[ReadEvent]) -> CustomerFacts:
    facts = CustomerFacts(account, customer_id)
    for event in events:
        facts.first_seen = min(filter(None, (facts.first_seen, event.evidence.created)))
        if event.unreadable:
            facts.unreadable.append(event.evidence)
        else:
            _read_into(facts, event.type, event.record, event.evidence)
    for snapshots in facts.subscriptions.values():
        snapshots.sort(key=lambda s: s.sort_key)
    for invoice_facts in facts.invoices.values():
        invoice_facts.sort(key=lambda f: f.sort_key)
    facts.discounts.sort(key=lambda d: (d.evidence, d.deleted))
    return facts


def _read_into(
    facts: CustomerFacts, event_type: str, record: StripeRecord | None, evidence: Evidence
) -> None:
    if isinstance(record, Subscription):
        snapshot = SubscriptionSnapshot(record, evidence, event_type)
        facts.subscriptions.setdefault(record.id, []).append(snapshot)
    elif isinstance(record, Discount):
        deleted = event_type.endswith(".deleted")
        facts.discounts.append(DiscountFact(record, evidence, deleted))
    elif isinstance(record, Invoice):
        if record.id is not None:
            facts.invoices.setdefault(record.id, []).append(InvoiceFact(record, evidence))
    elif isinstance(record, Customer):
        customer = record
        # The newest rendering in business order wins, not the last to arrive; a deleted
        # customer's stub (id only) never replaces what was known of them.
        newer = facts.customer_evidence is None or evidence > facts.customer_evidence
        if not customer.deleted and (facts.customer is None or newer):
            facts.customer, facts.customer_evidence = customer, evidence
        elif facts.customer is None:
            facts.customer = customer
        if customer.deleted or event_type == "customer.deleted":
            facts.deleted_at = min(filter(None, (facts.deleted_at, evidence.created)))
