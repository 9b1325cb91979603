"""A large, deterministic Stripe account for backfill and load tests: hundreds of customers on
monthly and yearly plans over many months, with renewals, dunning that recovers late (or not),
cancellations now and at period end, seat changes, trials, expired first payments and refunds.

Built with the StripeAccount builder, so objects and events are real-shaped in either layout.
Everything is driven by one seeded RNG and a time-ordered agenda, so a seed gives the same ids,
events and amounts every time.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from simulator.stripe_account import (
    BASIL,
    Interval,
    Item,
    Layout,
    Line,
    StripeAccount,
    add_interval,
)

# The account's history starts here; `build_large_account(..., months=n)` ends at `end_of(n)`.
START: Final = datetime(2024, 1, 1, tzinfo=UTC)
HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Plan:
    price: str
    amount: str
    interval: Interval
    nickname: str
    per_seat: bool = False


PLANS: Final = (
    Plan("price_starter_monthly", "29.00", "month", "Starter"),
    Plan("price_team_monthly", "15.00", "month", "Team seat", per_seat=True),
    Plan("price_business_monthly", "99.00", "month", "Business"),
    Plan("price_starter_yearly", "290.00", "year", "Starter (annual)"),
    Plan("price_team_yearly", "150.00", "year", "Team seat (annual)", per_seat=True),
)
ADD_ON: Final = Plan("price_support_monthly", "49.00", "month", "Priority support")
# Relative weights of PLANS: most customers pay monthly.
PLAN_WEIGHTS: Final = (35, 30, 15, 12, 8)

# Probabilities, per customer or per billing period.
TRIAL: Final = 0.15
EXPIRED_FIRST_PAYMENT: Final = 0.02
ADD_ON_LATER: Final = 0.3
PAYMENT_FAILS: Final = 0.05
RETRY_RECOVERS: Final = 0.55
MAX_RETRIES: Final = 3
CANCEL_NOW: Final = 0.015
CANCEL_AT_PERIOD_END: Final = 0.02
SEAT_CHANGE: Final = 0.08
REFUND: Final = 0.015


def end_of(months: int) -> datetime:
    """When an account built over `months` stops: nothing happens at or after this instant."""
    return add_interval(START, "month", months)


@dataclass(slots=True)
class _Sub:
    id: str
    plan: Plan
    seats: int
    period_end: datetime
    trialing: bool = False
    ending: bool = False  # cancel_at_period_end was requested
    ended: bool = False
    dunning: bool = False  # an invoice is failing and being retried


@dataclass(order=True)
class _Task:
    at: datetime
    seq: int
    run: Callable[[datetime], None] = field(compare=False)


class _Builder:
    """Runs the account's life in time order: StripeAccount refuses events out of order."""

    def __init__(self, customers: int, months: int, seed: int, layout: Layout) -> None:
        self.acct = StripeAccount(layout, namespace=f"large-{seed}")
        self.rng = random.Random(seed)
        self.customers = customers
        self.end = end_of(months)
        self._agenda: list[_Task] = []
        self._seq = 0
        for plan in (*PLANS, ADD_ON):
            self.acct.price(
                plan.price, amount=plan.amount, interval=plan.interval, nickname=plan.nickname
            )

    # the agenda ---------------------------------------------------------------------------

    def later(self, at: datetime, run: Callable[[datetime], None]) -> None:
        self._seq += 1  # ties run in scheduling order, so the build is deterministic
        heapq.heappush(self._agenda, _Task(at, self._seq, run))

    def seconds(self, low: timedelta, high: timedelta) -> timedelta:
        """A whole number of seconds in [low, high): Stripe times have no fractions."""
        return timedelta(
            seconds=self.rng.randrange(int(low.total_seconds()), int(high.total_seconds()))
        )

    def build(self) -> StripeAccount:
        span = self.end - START
        for _ in range(self.customers):
            # Most customers are there from the first week; the rest join over the span.
            if self.rng.random() < 0.6:
                joined = START + self.seconds(timedelta(0), 7 * DAY)
            else:
                joined = START + self.seconds(7 * DAY, span * 0.9)
            self.later(joined, self.join)
        while self._agenda:
            task = heapq.heappop(self._agenda)
            if task.at >= self.end:
                break  # everything later is the future, as seen from the end of the span
            task.run(task.at)
        return self.acct

    # customers and subscriptions ------------------------------------------------------------

    def join(self, at: datetime) -> None:
        customer = self.acct.customer(self.acct.new_id("cus"), at=at)
        plan = self.rng.choices(PLANS, weights=PLAN_WEIGHTS)[0]
        seats = self.rng.randint(2, 25) if plan.per_seat else 1
        roll = self.rng.random()
        if roll < EXPIRED_FIRST_PAYMENT:
            self.expire_first_payment(customer, plan, seats, at)
            return
        if roll < EXPIRED_FIRST_PAYMENT + TRIAL:
            self.start_trial(customer, plan, seats, at)
        else:
            self.start(customer, plan, seats, at)
        if self.rng.random() < ADD_ON_LATER:
            when = at + self.seconds(20 * DAY, 150 * DAY)
            self.later(when, lambda t: self.start(customer, ADD_ON, 1, t))

    def start(self, customer: str, plan: Plan, seats: int, at: datetime) -> None:
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"), customer, [Item(plan.price, seats)], at=at
        )
        self.acct.bill(sub_id, at=at, billing_reason="subscription_create")
        sub = _Sub(sub_id, plan, seats, add_interval(at, plan.interval))
        self.plan_period(sub, at)

    def start_trial(self, customer: str, plan: Plan, seats: int, at: datetime) -> None:
        trial_end = at + 14 * DAY
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"),
            customer,
            [Item(plan.price, seats)],
            at=at,
            trial_end=trial_end,
        )
        # Stripe issues a 0.00 invoice when a trial starts.
        trial_line = Line(
            description=f"Trial period for {plan.nickname}",
            amount="0.00",
            price=plan.price,
            quantity=seats,
            subscription_item=self.acct.item_id(sub_id, plan.price),
            period=(at, trial_end),
        )
        self.acct.bill(sub_id, at=at, billing_reason="subscription_create", lines=[trial_line])
        sub = _Sub(sub_id, plan, seats, trial_end, trialing=True)
        self.later(trial_end, lambda t: self.renew(sub, t))

    def expire_first_payment(self, customer: str, plan: Plan, seats: int, at: datetime) -> None:
        """The first payment fails; Stripe expires the incomplete subscription after 23 h."""
        sub_id = self.acct.subscribe(
            self.acct.new_id("sub"), customer, [Item(plan.price, seats)], at=at, status="incomplete"
        )
        invoice = self.acct.bill(
            sub_id, at=at, billing_reason="subscription_create", outcome="failed"
        )

        def expire(t: datetime) -> None:
            self.acct.expire_incomplete(sub_id, at=t)
            self.acct.void_invoice(invoice, at=t)

        self.later(at + 23 * HOUR, expire)

    def plan_period(self, sub: _Sub, start: datetime) -> None:
        """What happens during one billing period: maybe a seat change or a cancellation."""
        length = sub.period_end - start
        self.later(sub.period_end, lambda t: self.renew(sub, t))
        if sub.plan.per_seat and self.rng.random() < SEAT_CHANGE:
            self.later(start + self.seconds(DAY, length - DAY), lambda t: self.change_seats(sub, t))
        roll = self.rng.random()
        if roll < CANCEL_NOW:
            self.later(start + self.seconds(DAY, length - DAY), lambda t: self.cancel_now(sub, t))
        elif roll < CANCEL_NOW + CANCEL_AT_PERIOD_END:
            when = start + self.seconds(DAY, length - DAY)
            self.later(when, lambda t: self.cancel_at_period_end(sub, t))

    def change_seats(self, sub: _Sub, at: datetime) -> None:
        if sub.ended or sub.ending:
            return
        sub.seats = max(1, sub.seats + self.rng.choice((-3, -1, 1, 2, 5)))
        # Billed from the next renewal on; prorations are not modelled here.
        self.acct.update_items(sub.id, at=at, quantity=sub.seats)

    def cancel_now(self, sub: _Sub, at: datetime) -> None:
        if sub.ended or sub.ending or sub.dunning:
            return
        sub.ended = True
        self.acct.cancel(sub.id, at=at, feedback=self.rng.choice(("too_expensive", "unused")))

    def cancel_at_period_end(self, sub: _Sub, at: datetime) -> None:
        if sub.ended or sub.ending or sub.dunning:
            return
        sub.ending = True
        self.acct.cancel_at_period_end(sub.id, at=at, feedback="switched_service")

    # renewals and payments ------------------------------------------------------------------

    def renew(self, sub: _Sub, at: datetime) -> None:
        if sub.ended:
            return
        if sub.ending:
            sub.ended = True
            self.acct.cancel(sub.id, at=at)  # Stripe ends it at the period's end
            return
        self.acct.renew(sub.id, at=at, status="active" if sub.trialing else None)
        sub.trialing = False
        # Stripe leaves a renewal draft open for about an hour before finalizing it.
        invoice = self.acct.bill(sub.id, at=at, outcome="draft")
        sub.period_end = add_interval(at, sub.plan.interval)
        self.later(at + HOUR, lambda t: self.settle(sub, invoice, t))
        self.plan_period(sub, at)

    def settle(self, sub: _Sub, invoice: str, at: datetime) -> None:
        self.acct.finalize_invoice(invoice, at=at)
        if self.rng.random() < PAYMENT_FAILS:
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
        # Out of retries: the invoice is written off and the subscription canceled at once.
        self.acct.mark_uncollectible(invoice, at=at)
        sub.dunning = False
        if not sub.ended:
            sub.ended = True
            self.acct.cancel(sub.id, at=at, reason="payment_failed")

    def paid(self, invoice: str, at: datetime) -> None:
        charge = self.acct.pay_invoice(invoice, at=at)
        if charge is not None and self.rng.random() < REFUND:
            amount = None if self.rng.random() < 0.6 else "10.00"  # full, or a partial refund

            def refund(t: datetime) -> None:
                self.acct.refund(charge, at=t, amount=amount)

            self.later(at + self.seconds(DAY, 10 * DAY), refund)


def build_large_account(
    customers: int, months: int, seed: int, layout: Layout = BASIL
) -> StripeAccount:
    """A realistic account of `customers` customers over `months` months from START, the same
    for the same arguments. Its last event is before `end_of(months)`."""
    if customers < 0 or months < 1:
        raise ValueError("give customers >= 0 and months >= 1")
    # The builder deep-copies millions of acyclic dicts; the cycle collector rescanning them
    # would take about a third of the time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Builder(customers, months, seed, layout).build()
    finally:
        if was_enabled:
            gc.enable()
