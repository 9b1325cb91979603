"""A realistic Stripe account's life, as a time-ordered stream of Stripe-shaped events.

Customers sign up (some with a trial, some with a coupon) on monthly, yearly and weekly
plans, per seat on a tiered price, in USD, EUR or GBP. They renew, add seats, upgrade and
downgrade with prorations, buy one-time services, fail payments that recover late or end
`unpaid`, cancel now or at the period's end, come back, and get refunds.

Everything is drawn from one seeded RNG and run from a time-ordered agenda, so a seed gives
the same ids, events and amounts every time. The StripeAccount builder makes each object and
event real-shaped in the chosen API layout.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

from simulator.stripe_account import (
    BASIL,
    Interval,
    Item,
    Json,
    Layout,
    Line,
    StripeAccount,
    Tier,
    add_interval,
    decimal_text,
    item_amount,
    unix,
)

# A simulated history starts here; `months=n` ends it at `end_of(n)`.
START: Final = datetime(2024, 1, 1, tzinfo=UTC)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)

# Customers' currencies, by weight: most pay in dollars.
CURRENCIES: Final = (("usd", 70), ("eur", 20), ("gbp", 10))


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan offered in every currency; `amounts` are major units per currency."""

    key: str
    nickname: str
    interval: Interval
    amounts: dict[str, str] = field(default_factory=dict)
    # Per-seat plans on a volume-tiered price: (up_to, unit amount per currency).
    tiers: tuple[tuple[int | None, dict[str, str]], ...] = ()
    weight: int = 0
    # Plans one step up or down, for upgrades and downgrades.
    up: str | None = None
    down: str | None = None

    @property
    def per_seat(self) -> bool:
        return bool(self.tiers)

    def price_id(self, currency: str) -> str:
        return f"price_{self.key}_{currency}"


def _each(usd: str, eur: str, gbp: str) -> dict[str, str]:
    return {"usd": usd, "eur": eur, "gbp": gbp}


PLANS: Final = (
    Plan(
        "starter_monthly",
        "Starter",
        "month",
        _each("29.00", "27.00", "23.00"),
        weight=30,
        up="business_monthly",
    ),
    Plan(
        "business_monthly",
        "Business",
        "month",
        _each("99.00", "92.00", "79.00"),
        weight=12,
        down="starter_monthly",
    ),
    Plan(
        "team_monthly",
        "Team (per seat)",
        "month",
        tiers=(
            (10, _each("15.00", "14.00", "12.00")),
            (50, _each("12.00", "11.00", "9.50")),
            (None, _each("10.00", "9.00", "8.00")),
        ),
        weight=25,
    ),
    Plan(
        "starter_yearly", "Starter (annual)", "year", _each("290.00", "270.00", "230.00"), weight=12
    ),
    Plan(
        "team_yearly",
        "Team (per seat, annual)",
        "year",
        tiers=((None, _each("150.00", "140.00", "120.00")),),
        weight=8,
    ),
    Plan("pro_weekly", "Pro (weekly)", "week", _each("9.00", "8.50", "7.00"), weight=5),
)
ADD_ON: Final = Plan(
    "support_monthly", "Priority support", "month", _each("49.00", "45.00", "39.00")
)
ONBOARDING: Final = _each("199.00", "185.00", "159.00")  # a one-time service
BY_KEY: Final = {plan.key: plan for plan in (*PLANS, ADD_ON)}

# Probabilities, per customer, per billing period or per payment.
TRIAL: Final = 0.2
TRIAL_NOT_CONVERTED: Final = 0.25
COUPON: Final = 0.15
EXPIRED_FIRST_PAYMENT: Final = 0.02
ADD_ON_LATER: Final = 0.2
ONBOARDING_BOUGHT: Final = 0.1
PAYMENT_FAILS: Final = 0.05
RETRY_RECOVERS: Final = 0.55
MAX_RETRIES: Final = 3
UNPAID_INSTEAD_OF_CANCELED: Final = 0.5
UNPAID_PAYS_LATE: Final = 0.4
CANCEL_NOW: Final = 0.012
CANCEL_AT_PERIOD_END: Final = 0.02
SEAT_CHANGE: Final = 0.1
PLAN_CHANGE: Final = 0.04
COMES_BACK: Final = 0.15
REFUND: Final = 0.015
# A settled invoice stays in memory this long, for refunds that may still come.
KEEP_SETTLED: Final = 20 * DAY


def end_of(months: int, start: datetime = START) -> datetime:
    """When a history of `months` stops: nothing happens at or after this instant."""
    return add_interval(start, "month", months)


@dataclass(slots=True)
class _Sub:
    id: str
    customer: str
    plan: Plan
    currency: str
    seats: int
    period_start: datetime
    period_end: datetime
    trialing: bool = False
    ending: bool = False  # cancel_at_period_end was requested
    ended: bool = False
    dunning: bool = False  # an invoice is failing and being retried
    unpaid: bool = False
    credits: list[Line] = field(default_factory=list)  # prorations for the next invoice


@dataclass(order=True)
class _Task:
    at: datetime
    seq: int
    run: Callable[[datetime], None] = field(compare=False)


class AccountLife:
    """Runs one account's life in time order (StripeAccount refuses events out of order).

    Iterate over it for the events and snapshot records as they are made; with
    `keep_objects=True` the builder keeps every object and event, for a fake Stripe API."""

    def __init__(
        self,
        customers: int,
        months: int,
        seed: int,
        layout: Layout = BASIL,
        *,
        start: datetime = START,
        keep_objects: bool = False,
    ) -> None:
        if customers < 0 or months < 1:
            raise ValueError("give customers >= 0 and months >= 1")
        self._made: deque[Json] = deque()
        self.acct = StripeAccount(
            layout, namespace=f"sim-{seed}", sink=None if keep_objects else self._made.append
        )
        self.rng = random.Random(seed)
        self.customers = customers
        self.start = start
        self.end = end_of(months, start)
        self._keep = keep_objects
        self._agenda: list[_Task] = []
        self._seq = 0
        self._catalogue()

    def _catalogue(self) -> None:
        for plan in (*PLANS, ADD_ON):
            for currency in ("usd", "eur", "gbp"):
                price = plan.price_id(currency)
                if plan.tiers:
                    tiers = [Tier(up_to, unit[currency]) for up_to, unit in plan.tiers]
                    self.acct.price(
                        price,
                        tiers=tiers,
                        tiers_mode="volume",
                        interval=plan.interval,
                        nickname=plan.nickname,
                        currency=currency,
                    )
                else:
                    self.acct.price(
                        price,
                        amount=plan.amounts[currency],
                        interval=plan.interval,
                        nickname=plan.nickname,
                        currency=currency,
                    )
        for currency, amount in ONBOARDING.items():
            self.acct.price(
                f"price_onboarding_{currency}",
                amount=amount,
                interval=None,
                nickname="Onboarding",
                currency=currency,
            )
        self.acct.coupon("WELCOME20", percent_off="20", duration="repeating", duration_in_months=3)
        self.acct.coupon("HALFOFF", percent_off="50", duration="once")
        self.acct.coupon("LOYAL10", percent_off="10", duration="forever")

    # the agenda ---------------------------------------------------------------------------

    def later(self, at: datetime, run: Callable[[datetime], None]) -> None:
        self._seq += 1  # ties run in scheduling order, so the life is deterministic
        heapq.heappush(self._agenda, _Task(at, self._seq, run))

    def seconds(self, low: timedelta, high: timedelta) -> timedelta:
        """A whole number of seconds in [low, high): Stripe times have no fractions."""
        return timedelta(
            seconds=self.rng.randrange(int(low.total_seconds()), int(high.total_seconds()))
        )

    def __iter__(self) -> Iterator[Json]:
        """The events (and balance-transaction snapshot records) in the order they happen."""
        # The builder copies millions of acyclic dicts; the cycle collector rescanning them
        # would take about a third of the time.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            span = self.end - self.start
            for _ in range(self.customers):
                # Most customers are there from the first weeks; the rest join over the span.
                if self.rng.random() < 0.5:
                    joined = self.start + self.seconds(timedelta(0), 14 * DAY)
                else:
                    joined = self.start + self.seconds(14 * DAY, span * 0.95)
                self.later(joined, self.join)
            while self._agenda:
                task = heapq.heappop(self._agenda)
                if task.at >= self.end:
                    break  # everything later is the future, as seen from the end of the span
                task.run(task.at)
                while self._made:
                    yield self._made.popleft()
        finally:
            if was_enabled:
                gc.enable()

    def run(self) -> StripeAccount:
        """Run the whole life; with `keep_objects`, the builder then holds it all."""
        for _ in self:
            pass
        return self.acct

    # customers and subscriptions ------------------------------------------------------------

    def join(self, at: datetime) -> None:
        customer = self.acct.customer(self.acct.new_id("cus"), at=at)
        currency = self.rng.choices(
            [name for name, _ in CURRENCIES], weights=[weight for _, weight in CURRENCIES]
        )[0]
        self.subscribe(customer, currency, at, first=True)
        if self.rng.random() < ADD_ON_LATER:
            when = at + self.seconds(20 * DAY, 150 * DAY)
            self.later(when, lambda t: self.start_plan(customer, currency, ADD_ON, 1, t))
        if self.rng.random() < ONBOARDING_BOUGHT:
            when = at + self.seconds(HOUR, 30 * DAY)
            self.later(when, lambda t: self.buy_onboarding(customer, currency, t))

    def subscribe(self, customer: str, currency: str, at: datetime, *, first: bool) -> None:
        plan = self.rng.choices(PLANS, weights=[p.weight for p in PLANS])[0]
        seats = self.rng.choice((1, 2, 3, 5, 8, 12, 20, 35, 60)) if plan.per_seat else 1
        roll = self.rng.random()
        if first and roll < EXPIRED_FIRST_PAYMENT:
            self.expire_first_payment(customer, currency, plan, seats, at)
        elif first and roll < EXPIRED_FIRST_PAYMENT + TRIAL:
            self.start_trial(customer, currency, plan, seats, at)
        else:
            self.start_plan(customer, currency, plan, seats, at)

    def _coupon(self, plan: Plan) -> str | None:
        if plan.interval == "week" or self.rng.random() >= COUPON:
            return None
        return self.rng.choice(("WELCOME20", "WELCOME20", "HALFOFF", "LOYAL10"))

    def start_plan(
        self, customer: str, currency: str, plan: Plan, seats: int, at: datetime
    ) -> None:
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"),
            customer,
            [Item(plan.price_id(currency), seats)],
            at=at,
            coupon=self._coupon(plan),
        )
        invoice = self.acct.bill(sub_id, at=at, billing_reason="subscription_create")
        self.settled(invoice, at)
        sub = _Sub(sub_id, customer, plan, currency, seats, at, add_interval(at, plan.interval))
        self.plan_period(sub)

    def start_trial(
        self, customer: str, currency: str, plan: Plan, seats: int, at: datetime
    ) -> None:
        trial_end = at + 14 * DAY
        price = plan.price_id(currency)
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"), customer, [Item(price, seats)], at=at, trial_end=trial_end
        )
        # Stripe issues a 0.00 invoice when a trial starts.
        trial_line = Line(
            description=f"Trial period for {plan.nickname}",
            amount="0.00",
            price=price,
            quantity=seats,
            subscription_item=self.acct.item_id(sub_id, price),
            period=(at, trial_end),
        )
        invoice = self.acct.bill(
            sub_id, at=at, billing_reason="subscription_create", lines=[trial_line]
        )
        self.settled(invoice, at)
        sub = _Sub(sub_id, customer, plan, currency, seats, at, trial_end, trialing=True)
        self.later(trial_end, lambda t: self.renew(sub, t))

    def expire_first_payment(
        self, customer: str, currency: str, plan: Plan, seats: int, at: datetime
    ) -> None:
        """The first payment fails; Stripe expires the incomplete subscription after 23 h."""
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"),
            customer,
            [Item(plan.price_id(currency), seats)],
            at=at,
            status="incomplete",
        )
        invoice = self.acct.bill(
            sub_id, at=at, billing_reason="subscription_create", outcome="failed"
        )

        def expire(t: datetime) -> None:
            self.acct.expire_incomplete(sub_id, at=t)
            self.acct.void_invoice(invoice, at=t)
            self.settled(invoice, t)

        self.later(at + 23 * HOUR, expire)

    def buy_onboarding(self, customer: str, currency: str, at: datetime) -> None:
        """A one-time service on an invoice of its own, paid at once."""
        line = Line(
            description="Onboarding",
            amount=ONBOARDING[currency],
            price=f"price_onboarding_{currency}",
        )
        invoice = self.acct.create_invoice(customer, [line], at=at)
        self.acct.finalize_invoice(invoice, at=at)
        self.paid(invoice, at)

    def plan_period(self, sub: _Sub) -> None:
        """What happens during one billing period: maybe a seat or plan change, maybe a
        cancellation. The renewal at its end is the subscription's one pending renewal."""
        start, end = sub.period_start, sub.period_end
        self.later(end, lambda t: self.renew(sub, t))
        if end - start < 2 * DAY:
            return

        def sometime() -> datetime:
            return start + self.seconds(DAY, end - start - DAY)

        if sub.plan.per_seat and self.rng.random() < SEAT_CHANGE:
            self.later(sometime(), lambda t: self.change_seats(sub, t))
        elif (sub.plan.up or sub.plan.down) and self.rng.random() < PLAN_CHANGE:
            self.later(sometime(), lambda t: self.change_plan(sub, t))
        roll = self.rng.random()
        if roll < CANCEL_NOW:
            self.later(sometime(), lambda t: self.cancel_now(sub, t))
        elif roll < CANCEL_NOW + CANCEL_AT_PERIOD_END:
            self.later(sometime(), lambda t: self.cancel_at_period_end(sub, t))

    def _busy(self, sub: _Sub) -> bool:
        return sub.ended or sub.ending or sub.dunning or sub.unpaid or sub.trialing

    # changes within a period, with prorations --------------------------------------------

    def _prorations(
        self,
        sub: _Sub,
        old_price: str,
        old_seats: int,
        new_price: str,
        new_seats: int,
        at: datetime,
    ) -> tuple[list[Line], int]:
        """Stripe's two proration items for the rest of the period: a credit for the unused
        time on the old item, a charge for the remaining time on the new one. Returns them
        and their net in minor units."""
        left = Fraction(
            unix(sub.period_end) - unix(at), unix(sub.period_end) - unix(sub.period_start)
        )
        item = self.acct.item_id(sub.id, new_price)
        old = round(item_amount(self.acct.price_object(old_price), old_seats) * left)
        new = round(item_amount(self.acct.price_object(new_price), new_seats) * left)
        day = at.strftime("%d %b %Y")
        times = "\N{MULTIPLICATION SIGN}"
        new_name = BY_KEY[_key(new_price)].nickname
        period = (at, sub.period_end)
        lines = [
            Line(
                f"Unused time on {old_seats} {times} {sub.plan.nickname} after {day}",
                _major(-old),
                price=old_price,
                quantity=old_seats,
                subscription_item=item,
                proration=True,
                period=period,
            ),
            Line(
                f"Remaining time on {new_seats} {times} {new_name} after {day}",
                _major(new),
                price=new_price,
                quantity=new_seats,
                subscription_item=item,
                proration=True,
                period=period,
            ),
        ]
        return lines, new - old

    def _change_item(self, sub: _Sub, plan: Plan, seats: int, at: datetime) -> None:
        old_price, old_seats = sub.plan.price_id(sub.currency), sub.seats
        new_price = plan.price_id(sub.currency)
        self.acct.update_items(
            sub.id, at=at, price=new_price if new_price != old_price else None, quantity=seats
        )
        lines, net = self._prorations(sub, old_price, old_seats, new_price, seats, at)
        sub.plan, sub.seats = plan, seats
        if net > 0:
            # An upgrade is invoiced at once (proration_behavior=always_invoice)...
            invoice = self.acct.create_invoice(
                sub.customer,
                lines,
                at=at,
                subscription=sub.id,
                billing_reason="subscription_update",
            )
            self.acct.finalize_invoice(invoice, at=at)
            self.paid(invoice, at)
        else:
            # ...a downgrade's credit waits for the next renewal invoice.
            sub.credits.extend(lines)

    def change_seats(self, sub: _Sub, at: datetime) -> None:
        if self._busy(sub):
            return
        seats = max(1, sub.seats + self.rng.choice((-3, -1, 1, 2, 5, 10)))
        if seats != sub.seats:
            self._change_item(sub, sub.plan, seats, at)

    def change_plan(self, sub: _Sub, at: datetime) -> None:
        if self._busy(sub):
            return
        target = sub.plan.up if sub.plan.up and self.rng.random() < 0.6 else sub.plan.down
        if target is not None:
            self._change_item(sub, BY_KEY[target], sub.seats, at)

    def cancel_now(self, sub: _Sub, at: datetime) -> None:
        if self._busy(sub):
            return
        sub.ended = True
        self.acct.cancel(sub.id, at=at, feedback=self.rng.choice(("too_expensive", "unused")))
        self.maybe_come_back(sub, at)

    def cancel_at_period_end(self, sub: _Sub, at: datetime) -> None:
        if self._busy(sub):
            return
        sub.ending = True
        self.acct.cancel_at_period_end(sub.id, at=at, feedback="switched_service")

    def maybe_come_back(self, sub: _Sub, at: datetime) -> None:
        """Some churned customers subscribe again months later: a reactivation."""
        if sub.plan is ADD_ON or self.rng.random() >= COMES_BACK:
            return
        when = at + self.seconds(30 * DAY, 150 * DAY)
        self.later(when, lambda t: self.subscribe(sub.customer, sub.currency, t, first=False))

    # renewals and payments ------------------------------------------------------------------

    def renew(self, sub: _Sub, at: datetime) -> None:
        if sub.ended:
            return
        if sub.ending:
            sub.ended = True
            self.acct.cancel(sub.id, at=at)  # Stripe ends it at the period's end
            self.maybe_come_back(sub, at)
            return
        if sub.trialing and self.rng.random() < TRIAL_NOT_CONVERTED:
            sub.ended = True
            self.acct.cancel(sub.id, at=at, reason="cancellation_requested", feedback="unused")
            return
        if sub.dunning or sub.unpaid:
            # The renewal waits until the failing invoice is settled one way or the other.
            self.later(at + DAY, lambda t: self.renew(sub, t))
            return
        self.acct.renew(sub.id, at=at, status="active" if sub.trialing else None)
        sub.trialing = False
        # Stripe leaves a renewal draft open for about an hour before finalizing it.
        credits, sub.credits = sub.credits, []
        invoice = self.acct.bill(sub.id, at=at, outcome="draft", extra_lines=credits)
        sub.period_start, sub.period_end = at, add_interval(at, sub.plan.interval)
        self.later(at + HOUR, lambda t: self.settle(sub, invoice, t))
        self.plan_period(sub)

    def settle(self, sub: _Sub, invoice: str, at: datetime) -> None:
        self.acct.finalize_invoice(invoice, at=at)
        if self.acct.object(invoice)["amount_due"] > 0 and self.rng.random() < PAYMENT_FAILS:
            self.acct.fail_invoice_payment(invoice, at=at)
            self.acct.set_status(sub.id, "past_due", at=at)
            sub.dunning = True
            self.later(at + 3 * DAY, lambda t: self.retry(sub, invoice, 1, t))
            return
        self.paid(invoice, at)

    def retry(self, sub: _Sub, invoice: str, attempt: int, at: datetime) -> None:
        if self.rng.random() < RETRY_RECOVERS:
            self.paid(invoice, at)
            sub.dunning = False
            if not sub.ended:
                self.acct.set_status(sub.id, "active", at=at)
            return
        self.acct.fail_invoice_payment(invoice, at=at)
        if attempt < MAX_RETRIES:
            when = at + self.seconds(3 * DAY, 6 * DAY)
            self.later(when, lambda t: self.retry(sub, invoice, attempt + 1, t))
            return
        sub.dunning = False
        if self.rng.random() < UNPAID_INSTEAD_OF_CANCELED:
            # Out of retries with "mark the subscription unpaid": it stays, unbilled, until
            # the customer pays the open invoice or the merchant cancels.
            sub.unpaid = True
            self.acct.set_status(sub.id, "unpaid", at=at)
            self.later(
                at + self.seconds(5 * DAY, 25 * DAY), lambda t: self.resolve(sub, invoice, t)
            )
            return
        # Out of retries with "cancel the subscription": the invoice is written off.
        self.acct.mark_uncollectible(invoice, at=at)
        self.settled(invoice, at)
        sub.ended = True
        self.acct.cancel(sub.id, at=at, reason="payment_failed")

    def resolve(self, sub: _Sub, invoice: str, at: datetime) -> None:
        sub.unpaid = False
        if self.rng.random() < UNPAID_PAYS_LATE:
            self.paid(invoice, at)
            self.acct.set_status(sub.id, "active", at=at)
            return
        self.acct.mark_uncollectible(invoice, at=at)
        self.settled(invoice, at)
        sub.ended = True
        self.acct.cancel(sub.id, at=at, reason="payment_failed")

    def paid(self, invoice: str, at: datetime) -> None:
        charge = self.acct.pay_invoice(invoice, at=at)
        if charge is not None and self.rng.random() < REFUND:
            partial = self.rng.random() >= 0.6
            amount = self.acct.object(charge)["amount"]
            refund = _major(amount // 4) if partial and amount >= 400 else None

            def give_back(t: datetime) -> None:
                self.acct.refund(charge, at=t, amount=refund)

            self.later(at + self.seconds(DAY, 10 * DAY), give_back)
        self.settled(invoice, at)

    def settled(self, invoice: str, at: datetime) -> None:
        """The invoice will not change again: forget it (and its charges) after a while."""
        if self._keep:
            return
        done = [invoice, *self.acct.charges_of(invoice)]
        self.later(at + KEEP_SETTLED, lambda t: self.acct.forget(*done))


def _major(minor_units: int) -> str:
    return decimal_text(Decimal(minor_units) / 100)


def _key(price_id: str) -> str:
    """`price_team_monthly_eur` -> `team_monthly`."""
    return price_id.removeprefix("price_").rsplit("_", 1)[0]


def simulate(customers: int, months: int, seed: int, layout: Layout = BASIL) -> Iterator[Json]:
    """The events of a simulated account, in time order, with the balance-transaction
    snapshot records (marked `stripe_ledger.snapshot`) that a backfill would add."""
    return iter(AccountLife(customers, months, seed, layout))


def simulated_account(
    customers: int, months: int, seed: int, layout: Layout = BASIL
) -> StripeAccount:
    """The whole account kept in memory, every object and event: for a fake Stripe API."""
    return AccountLife(customers, months, seed, layout, keep_objects=True).run()
