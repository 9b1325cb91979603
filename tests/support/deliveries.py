"""Load as Stripe sends it: thousands of distinct signed events, some delivered twice, and a
sender that keeps redelivering whatever was not answered 2xx, as Stripe does for days.

Events are the events-2020 fixtures with every Stripe id made unique: each customer has one
customer id and one subscription (with its items and prices) across all of its events, so it
has a history to derive, and everything else (invoices, charges, refunds...) gets ids of its
own per event. Each delivery is signed with the current time when it is sent.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from tests.support.signing import SECRET, encode, signed
from tests.support.stripe_fixtures import event_2020

# Fixtures that name a customer, so the projections have something to derive.
_KINDS = (
    "subscription_created",
    "subscription_updated",
    "invoice_finalized",
    "invoice_paid",
    "invoice_updated",
    "charge_succeeded",
    "charge_refunded",
    "customer_updated",
    "credit_note_created",
    # No customer in the object: routed through the charge they refer to.
    "refund_created",
    "charge_dispute_created",
)
# The fixtures name several customers and subscriptions: each becomes the one of its customer.
_ONE_PER_CUSTOMER = ("cus", "sub")
# Items, prices and charges stay distinct within a customer, shared by its events.
_PER_CUSTOMER = ("si", "price", "prod", "plan", "ch")
# The refund's and the dispute's charge is the succeeded one of the same customer, so
# their routes resolve (whichever arrives first).
_SAME_OBJECT = {
    "ch_1NirD82eZvKYlo2CIvbtLWuY": "ch_3KtQThJDPojXS6LN0YmgbxGj",
    "ch_1IqtGAJDPojXS6LNstgEfUji": "ch_3KtQThJDPojXS6LN0YmgbxGj",
}
# The fixtures' prices are free; a price of its own per subscription event gives the
# customers MRR that moves (new, expansion, contraction).
_PRICES = (900, 2900, 4900, 9900)
_FREE = re.compile(r'"(unit_amount|amount)": 0,|"(unit_amount_decimal|amount_decimal)": "0"')
_ID = re.compile(r'"((?:cus|sub|si|price|prod|plan|in|il|ch|pi|re|txn|cn|dp)_[A-Za-z0-9]+)"')
_EVENT_ID = re.compile(r'"id": "evt_[A-Za-z0-9]+"')
_CREATED = re.compile(r'"created": (\d+)')


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    body: bytes


def _fresh(original: str, *salt: object) -> str:
    prefix = original.rsplit("_", 1)[0]
    digest = hashlib.sha256(repr((original, *salt)).encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def distinct_events(count: int, *, customers: int, seed: int = 0) -> list[Delivery]:
    """`count` events with distinct event ids, spread over `customers` customers."""
    rng = random.Random(seed)
    templates = {kind: encode(event_2020(kind)).decode() for kind in _KINDS}
    events: list[Delivery] = []
    for serial in range(count):
        kind = rng.choice(_KINDS)
        customer = rng.randrange(customers)

        def replace(match: re.Match[str], customer: int = customer, serial: int = serial) -> str:
            original = _SAME_OBJECT.get(match.group(1), match.group(1))
            prefix = original.split("_", 1)[0]
            if prefix in _ONE_PER_CUSTOMER:
                return f'"{_fresh(prefix + "_", customer)}"'
            if prefix in _PER_CUSTOMER:
                return f'"{_fresh(original, customer)}"'
            return f'"{_fresh(original, serial)}"'

        text = _ID.sub(replace, templates[kind])
        if kind.startswith("subscription_"):
            text = _priced(text, rng.choice(_PRICES))
        event_id = f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}"
        text = _EVENT_ID.sub(f'"id": "{event_id}"', text, count=1)
        # The event's own `created` (its first one) spread out, so a customer's events
        # happen one after another rather than all at the fixture's instant.
        created = _CREATED.search(text)
        assert created is not None
        later = str(int(created.group(1)) + serial * 60)
        text = text[: created.start(1)] + later + text[created.end(1) :]
        events.append(Delivery(event_id, text.encode()))
    return events


def _priced(text: str, amount: int) -> str:
    def price(match: re.Match[str]) -> str:
        if match.group(1):
            return f'"{match.group(1)}": {amount},'
        return f'"{match.group(2)}": "{amount}"'

    return _FREE.sub(price, text)


def with_duplicates(events: Sequence[Delivery], share: float, *, seed: int = 0) -> list[Delivery]:
    """Every event once, plus `share` of them a second time, all in a shuffled order."""
    rng = random.Random(seed)
    deliveries = [*events, *rng.sample(list(events), round(len(events) * share))]
    rng.shuffle(deliveries)
    return deliveries


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: where it went, when it was sent and answered (monotonic), and the status
    or the error."""

    event_id: str
    base: str
    sent_at: float
    answered_at: float
    status: int | None  # None: no HTTP answer (connection refused, reset...)
    text: str  # the response body, or the error's name


@dataclass
class Sender:
    """Posts every delivery until it is answered 2xx, with `concurrency` requests in flight,
    spread round-robin over `bases` (several server processes behind one sender)."""

    bases: Sequence[str]
    deliveries: Sequence[Delivery]
    concurrency: int = 16
    path: str = "/webhooks/stripe"
    secret: str = SECRET
    retry_delay: float = 0.05
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # event ids, in answer order
    _milestones: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    @property
    def statuses(self) -> collections.Counter[int | None]:
        return collections.Counter(a.status for a in self.attempts)

    async def acknowledgements(self, count: int) -> None:
        """Returns once `count` deliveries have been answered 2xx."""
        if len(self.acknowledged) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._milestones.append((count, future))
        await future

    async def run(self, *, deadline_seconds: float = 180.0) -> None:
        """Deliver everything; a delivery not answered 2xx goes back in the queue."""
        queue: collections.deque[Delivery] = collections.deque(self.deliveries)
        remaining = len(self.deliveries)
        deadline = time.monotonic() + deadline_seconds

        async def worker(index: int) -> None:
            nonlocal remaining
            # A client, and so a connection, per worker: httpx's shared pool spends more
            # CPU finding a free connection among dozens than the request itself costs.
            async with httpx.AsyncClient(timeout=30) as client:
                turn = index
                while remaining:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{remaining} deliveries still unacknowledged: {self.statuses}"
                        )
                    if not queue:  # others are in flight and may yet fail
                        await asyncio.sleep(self.retry_delay)
                        continue
                    delivery = queue.popleft()
                    base = self.bases[turn % len(self.bases)]
                    turn += 1
                    if await self._post(client, base, delivery):
                        remaining -= 1
                    else:
                        queue.append(delivery)
                        await asyncio.sleep(self.retry_delay)

        await asyncio.gather(*(worker(i) for i in range(self.concurrency)))

    async def _post(self, client: httpx.AsyncClient, base: str, delivery: Delivery) -> bool:
        sent_at = time.monotonic()
        try:
            response = await client.post(
                base + self.path, content=delivery.body, headers=signed(delivery.body, self.secret)
            )
        except httpx.TransportError as exc:
            failed = Attempt(
                delivery.event_id, base, sent_at, time.monotonic(), None, type(exc).__name__
            )
            self.attempts.append(failed)
            return False
        answered = Attempt(
            delivery.event_id, base, sent_at, time.monotonic(), response.status_code, response.text
        )
        self.attempts.append(answered)
        if not response.is_success:
            return False
        self.acknowledged.append(delivery.event_id)
        for count, future in self._milestones:
            if len(self.acknowledged) >= count and not future.done():
                future.set_result(None)
        return True
