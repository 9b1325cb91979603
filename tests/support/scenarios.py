"""The nine worked scenarios of ../shared/scenarios/SCENARIOS.md as Stripe event streams, in
either field layout, with the figures SCENARIOS.md states for them as data.

`SCENARIOS["S3"]("2025-03-31.basil")` builds one (EXTRA_SCENARIOS holds S6's aside about an
annual amount-off coupon). Events are chronological; a test shuffles and duplicates them.
Expected figures hold only what SCENARIOS.md states (comments mark each statement that had to
be read one way): money in major units as decimal strings, rates as 4-place decimal strings
("0.5000" is 50.00%), counts as ints, None for null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from simulator.stripe_account import (
    LAYOUTS,
    Item,
    Layout,
    Line,
    Phase,
    StripeAccount,
    Tier,
    unix,
)

MovementKind = Literal["new", "expansion", "contraction", "churn", "reactivation"]

# The JSON keys of the period figures; `Expected.periods` uses these and nothing else.
FIGURE_KEYS: Final = frozenset(
    {
        "mrr_start",
        "mrr_end",
        "arr_end",
        "committed_mrr_end",
        "new",
        "expansion",
        "reactivation",
        "contraction",
        "churn",
        "net_new_mrr",
        "churned_revenue",
        "active_customers",
        "new_customers",
        "reactivated_customers",
        "churned_customers",
        "paused_customers",
        "trialing_customers",
        "delinquent_customers",
        "subscriptions_by_status",
        "customer_churn_rate",
        "customer_churn_rate_stripe30",
        "nrr",
        "grr",
        "gross_mrr_churn_rate",
        "net_mrr_churn_rate",
        "arpu",
        "ltv",
        "quick_ratio",
        "gross_revenue",
        "refunds",
        "fees",
        "net_revenue",
        "net_volume",
        "tax_collected",
        "recurring_revenue",
        "usage_revenue",
        "one_time_revenue",
    }
)
MONEY_KEYS: Final = frozenset(
    {
        "mrr_start",
        "mrr_end",
        "arr_end",
        "committed_mrr_end",
        "new",
        "expansion",
        "reactivation",
        "contraction",
        "churn",
        "net_new_mrr",
        "churned_revenue",
        "arpu",
        "ltv",
        "gross_revenue",
        "refunds",
        "fees",
        "net_revenue",
        "net_volume",
        "tax_collected",
        "recurring_revenue",
        "usage_revenue",
        "one_time_revenue",
        "mrr",
        "arr",
        "committed_mrr",
    }
)
RATE_KEYS: Final = frozenset(
    {
        "customer_churn_rate",
        "customer_churn_rate_stripe30",
        "nrr",
        "grr",
        "gross_mrr_churn_rate",
        "net_mrr_churn_rate",
        "quick_ratio",
    }
)

# "No movements" in SCENARIOS.md: every movement sum of the period is zero.
NO_MOVEMENTS: Final[dict[str, object]] = {
    "new": "0.00",
    "expansion": "0.00",
    "reactivation": "0.00",
    "contraction": "0.00",
    "churn": "0.00",
}


@dataclass(frozen=True, slots=True)
class ExpectedMovement:
    """One MRR movement: its effective time, the customer, its kind and amount (major units)."""

    at: datetime
    customer: str
    kind: MovementKind
    amount: str


@dataclass(frozen=True)
class Expected:
    """What SCENARIOS.md states for one variant of a scenario.

    - `settings`: overrides of METRICS.md's settings table ({"profile": "stripe_compat"} for
      the Stripe-compatible profile); empty for the defaults.
    - `periods`: by calendar month ("2025-01"), figures keyed by FIGURE_KEYS.
      `subscriptions_by_status` lists the statuses with a non-zero count.
    - `snapshots`: by ISO instant, point-in-time figures ("At 03-10: ...").
    - `movements`: every MRR movement the scenario implies, history before the stated
      period included, in time order.
    - `customer_mrr`: MRR per customer at the end of the scenario's period, where given.
    - `other_figures`: by period, stated figures that have no key in FIGURE_KEYS
      (trials started, subscriptions canceled, paying subscriptions, ...).
    """

    settings: dict[str, str] = field(default_factory=dict)
    periods: dict[str, dict[str, object]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, object]] = field(default_factory=dict)
    movements: list[ExpectedMovement] = field(default_factory=list)
    customer_mrr: dict[str, str] = field(default_factory=dict)
    other_figures: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    layout: Layout
    events: list[dict[str, Any]]
    backfill: list[dict[str, Any]]
    expected: dict[str, Expected]


def as_layout(layout: str) -> Layout:
    for known in LAYOUTS:
        if layout == known:
            return known
    raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def instant(when: datetime) -> str:
    """The key of a snapshot: "2025-03-10T00:00:00+00:00"."""
    return when.isoformat()


def move(when: datetime, customer: str, kind: MovementKind, amount: str) -> ExpectedMovement:
    return ExpectedMovement(when, customer, kind, amount)


HOUR: Final = timedelta(hours=1)
STRIPE_COMPAT: Final = {"profile": "stripe_compat"}


def _start(
    acct: StripeAccount,
    name: str,
    items: list[Item],
    when: datetime,
    *,
    customer: str | None = None,
    coupon: str | None = None,
    tax_rate: str | None = None,
) -> str:
    """A customer (unless given) subscribing at `when`, first invoice paid at once."""
    customer = customer or acct.customer(f"cus_{name}", at=when)
    sub = acct.subscribe(f"sub_{name}", customer, items, at=when, coupon=coupon)
    return acct.bill(sub, at=when, billing_reason="subscription_create", tax_rate=tax_rate)


def _cycle(acct: StripeAccount, when: datetime, *subs: str, **bill: Any) -> list[str]:
    """Renewals at the period anchor: drafts at `when`, finalized and paid an hour later."""
    drafts = []
    for sub in subs:
        acct.renew(sub, at=when)
        drafts.append(acct.bill(sub, at=when, outcome="draft", **bill))
    for invoice in drafts:
        _settle(acct, invoice, when + HOUR)
    return drafts


def _settle(acct: StripeAccount, invoice: str, when: datetime) -> None:
    acct.finalize_invoice(invoice, at=when)
    acct.pay_invoice(invoice, at=when)


# --- S1 -------------------------------------------------------------------------------------


def s1(layout: str) -> Scenario:
    """Intervals, quantity, an incomplete subscription (January 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S1")
    acct.price("price_A", amount="50.00", nickname="Team seat")
    acct.price("price_B", amount="1200.00", interval="year", nickname="Annual")
    acct.price("price_C", amount="30.00", interval="month", interval_count=3, nickname="Quarter")
    acct.price("price_D", amount="12.00", interval="week", nickname="Weekly")
    acct.price("price_E", amount="3.00", interval="day", nickname="Daily")
    acct.price("price_F", amount="70.00", nickname="Pro")
    a, b, c, d = at(2025, 1, 10, 10), at(2025, 1, 20, 10), at(2025, 1, 25, 10), at(2025, 1, 28, 10)
    e1, e2, e3 = at(2025, 1, 29, 10), at(2025, 1, 30, 10), at(2025, 1, 31, 10)
    _start(acct, "A", [Item("price_A", 3)], a)
    _start(acct, "B", [Item("price_B")], b)
    _start(acct, "C", [Item("price_C")], c)
    _start(acct, "D", [Item("price_D")], d)
    _start(acct, "E", [Item("price_E")], e1)
    acct.renew("sub_E", at=e2)
    second = acct.bill("sub_E", at=e2, outcome="open")
    # sub_F: the first payment fails, so the subscription stays `incomplete`.
    acct.customer("cus_F", at=e2)
    acct.subscribe("sub_F", "cus_F", [Item("price_F")], at=e2, status="incomplete")
    f_invoice = acct.bill("sub_F", at=e2, billing_reason="subscription_create", outcome="failed")
    acct.pay_invoice(second, at=e2 + HOUR)
    acct.renew("sub_E", at=e3)
    third = acct.bill("sub_E", at=e3, outcome="open")
    # SCENARIOS.md's time; Stripe itself expires an incomplete subscription after 23 hours.
    acct.expire_incomplete("sub_F", at=e3)
    acct.void_invoice(f_invoice, at=e3)
    acct.pay_invoice(third, at=e3 + HOUR)
    default = Expected(
        periods={
            "2025-01": {
                "mrr_start": "0.00",
                "new": "403.25",
                "mrr_end": "403.25",
                "arr_end": "4839.00",
                "active_customers": 5,
                "new_customers": 5,
                "arpu": "80.65",
                # Read as statuses at 02-01 from METRICS.md's list, which has no
                # `incomplete_expired`; sub_F's expiry is under other_figures.
                "subscriptions_by_status": {"active": 5},
                # "Churn rate, NRR, GRR, quick ratio: null": the cohort churn rate.
                "customer_churn_rate": None,
                "nrr": None,
                "grr": None,
                "quick_ratio": None,
                "gross_revenue": "1401.00",
            }
        },
        other_figures={"2025-01": {"subscriptions_incomplete_expired": 1}},
        # Per customer at 02-01, the end of January.
        customer_mrr={
            "cus_A": "150.00",
            "cus_B": "100.00",
            "cus_C": "10.00",
            "cus_D": "52.00",
            "cus_E": "91.25",
            "cus_F": "0.00",
        },
        movements=[
            move(a, "cus_A", "new", "150.00"),
            move(b, "cus_B", "new", "100.00"),
            move(c, "cus_C", "new", "10.00"),
            move(d, "cus_D", "new", "52.00"),
            move(e1, "cus_E", "new", "91.25"),
        ],
    )
    return Scenario("S1", acct.layout, acct.events, acct.backfill, {"default": default})


# --- S2 -------------------------------------------------------------------------------------


def _trial(acct: StripeAccount, name: str, price: str, start: datetime, end: datetime) -> None:
    """A trialing subscription and the 0.00 invoice Stripe issues when a trial starts."""
    customer = acct.customer(f"cus_{name}", at=start)
    sub = acct.subscribe(f"sub_{name}", customer, [Item(price)], at=start, trial_end=end)
    trial_line = Line(
        description="Trial period for Growth",
        amount="0.00",
        price=price,
        subscription_item=acct.item_id(sub, price),
        period=(start, end),
    )
    acct.bill(sub, at=start, billing_reason="subscription_create", lines=[trial_line])


def s2(layout: str) -> Scenario:
    """Trials, tax, a failed first invoice (March 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S2")
    acct.price("price_growth", amount="100.00", tax_behavior="exclusive", nickname="Growth")
    acct.price("price_growth_incl", amount="120.00", tax_behavior="inclusive", nickname="Growth")
    g_start, g_end = at(2025, 3, 1, 9), at(2025, 3, 15, 9)
    g2_start, g2_end = at(2025, 3, 5, 9), at(2025, 3, 19, 9)
    h_start, g2_paid = at(2025, 3, 20, 10), at(2025, 3, 25, 9)
    _trial(acct, "G", "price_growth", g_start, g_end)
    _trial(acct, "G2", "price_growth", g2_start, g2_end)
    # Each trial ends at its `trial_end`: the update's `created` is that instant.
    acct.renew("sub_G", at=g_end, status="active")
    acct.bill("sub_G", at=g_end, tax_rate="20")
    acct.renew("sub_G2", at=g2_end, status="past_due")
    g2_invoice = acct.bill("sub_G2", at=g2_end, tax_rate="20", outcome="failed")
    _start(acct, "H", [Item("price_growth_incl")], h_start, tax_rate="20")
    acct.pay_invoice(g2_invoice, at=g2_paid)
    acct.set_status("sub_G2", "active", at=g2_paid)
    # "Expected (activation `at_start`)": the default setting, so no override.
    default = Expected(
        periods={
            "2025-03": {
                "new": "300.00",
                "mrr_end": "300.00",
                "arr_end": "3600.00",
                "gross_revenue": "360.00",
                "tax_collected": "60.00",
                "fees": "11.34",
                "net_revenue": "360.00",
                "net_volume": "348.66",
            }
        },
        other_figures={"2025-03": {"trials_started": 2, "trials_converted": 2}},
        snapshots={
            instant(at(2025, 3, 10)): {
                "mrr": "0.00",
                "trialing_customers": 2,
                "subscriptions_by_status": {"trialing": 2},
            },
            instant(at(2025, 3, 22)): {"mrr": "300.00", "delinquent_customers": 1},
        },
        movements=[
            move(g_end, "cus_G", "new", "100.00"),
            move(g2_end, "cus_G2", "new", "100.00"),
            # Tax-inclusive 120.00 less its 20.00 of tax.
            move(h_start, "cus_H", "new", "100.00"),
        ],
    )
    # Only what the variant restates; its other figures are the default's, unrestated.
    first_payment = Expected(
        settings={"activation": "at_first_payment"},
        snapshots={instant(at(2025, 3, 22)): {"mrr": "200.00"}},
        movements=[
            move(g_end, "cus_G", "new", "100.00"),
            move(h_start, "cus_H", "new", "100.00"),
            move(g2_paid, "cus_G2", "new", "100.00"),
        ],
    )
    expected = {"default": default, "at_first_payment": first_payment}
    return Scenario("S2", acct.layout, acct.events, acct.backfill, expected)


# --- S3 -------------------------------------------------------------------------------------


def s3(layout: str) -> Scenario:
    """Prorated upgrade, downgrade at period end through a schedule (April-May 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S3")
    acct.price("price_I100", amount="100.00", nickname="Starter")
    acct.price("price_I200", amount="200.00", nickname="Business")
    acct.price("price_I150", amount="150.00", nickname="Team")
    start, upgrade, scheduled = at(2025, 1, 1), at(2025, 4, 16), at(2025, 4, 20, 12)
    may, june = at(2025, 5, 1), at(2025, 6, 1)
    _start(acct, "I", [Item("price_I100")], start)
    for month in (2, 3, 4):
        _cycle(acct, at(2025, month, 1), "sub_I")
    # 04-16 00:00 leaves 15 of April's 30 days: exactly half a period either way.
    acct.update_items("sub_I", at=upgrade, price="price_I200")
    item = acct.item_id("sub_I", "price_I200")

    # Billed at once (proration_behavior=always_invoice): the unused half of 100.00 back,
    # the remaining half of 200.00 due.
    def proration(description: str, amount: str, price: str) -> Line:
        return Line(
            description,
            amount,
            price,
            subscription_item=item,
            proration=True,
            period=(upgrade, may),
        )

    prorations = [
        proration("Unused time on Starter after 16 Apr 2025", "-50.00", "price_I100"),
        proration("Remaining time on Business after 16 Apr 2025", "100.00", "price_I200"),
    ]
    acct.bill("sub_I", at=upgrade, billing_reason="subscription_update", lines=prorations)
    schedule = acct.create_schedule(
        "sub_I",
        [
            Phase(at(2025, 4, 1), may, (Item("price_I200"),)),
            Phase(may, june, (Item("price_I150"),)),
        ],
        at=scheduled,
    )
    acct.renew("sub_I", at=may, price="price_I150")
    acct.advance_schedule(schedule, at=may)
    acct.bill("sub_I", at=may, settle_at=may + HOUR)
    default = Expected(
        periods={
            "2025-04": {
                "mrr_start": "100.00",
                "expansion": "100.00",
                "mrr_end": "200.00",
                "nrr": "2.0000",
                "grr": "1.0000",
                "customer_churn_rate": "0.0000",
                "gross_revenue": "150.00",
            },
            "2025-05": {
                "mrr_start": "200.00",
                "contraction": "50.00",
                "mrr_end": "150.00",
                "nrr": "0.7500",
                "grr": "0.7500",
                # "gross revenue churn": METRICS.md's gross revenue churn rate, 1 - GRR.
                "gross_mrr_churn_rate": "0.2500",
                "churned_revenue": "50.00",
            },
        },
        movements=[
            move(start, "cus_I", "new", "100.00"),
            move(upgrade, "cus_I", "expansion", "100.00"),
            # The phase's start_date, not the schedule's creation, is when it takes effect.
            move(may, "cus_I", "contraction", "50.00"),
        ],
    )
    return Scenario("S3", acct.layout, acct.events, acct.backfill, {"default": default})


# --- S4 -------------------------------------------------------------------------------------


def s4(layout: str) -> Scenario:
    """Cancel at period end (May-June 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S4")
    acct.price("price_J", amount="80.00", nickname="Plus")
    acct.price("price_K", amount="20.00", nickname="Basic")
    j_start, k_start = at(2025, 4, 1), at(2025, 4, 15, 10)
    request, end = at(2025, 5, 10, 12), at(2025, 6, 1)
    _start(acct, "J", [Item("price_J")], j_start)
    _start(acct, "K", [Item("price_K")], k_start)
    _cycle(acct, at(2025, 5, 1), "sub_J")
    acct.cancel_at_period_end("sub_J", at=request)
    _cycle(acct, at(2025, 5, 15, 10), "sub_K")
    acct.cancel("sub_J", at=end)
    _cycle(acct, at(2025, 6, 15, 10), "sub_K")
    history = [move(j_start, "cus_J", "new", "80.00"), move(k_start, "cus_K", "new", "20.00")]
    default = Expected(
        periods={
            "2025-05": {"mrr_start": "100.00", **NO_MOVEMENTS, "mrr_end": "100.00"},
            "2025-06": {
                "churn": "80.00",
                "mrr_end": "20.00",
                "customer_churn_rate": "0.5000",
                # "gross revenue churn": 1 - GRR.
                "gross_mrr_churn_rate": "0.8000",
                "nrr": "0.2000",
                "grr": "0.2000",
                # "ARPU at 07-01": June's end.
                "arpu": "20.00",
                "ltv": "40.00",
            },
        },
        snapshots={
            instant(datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)): {
                "committed_mrr": "20.00",
                "subscriptions_pending_cancellation": 1,
            }
        },
        movements=[*history, move(end, "cus_J", "churn", "80.00")],
    )
    compat = Expected(
        settings=dict(STRIPE_COMPAT),
        periods={
            # The stripe30 rate "at 06-01" is May's, whose period ends then.
            "2025-05": {
                "churn": "80.00",
                "mrr_end": "20.00",
                "customer_churn_rate_stripe30": "0.5000",
            },
            "2025-06": dict(NO_MOVEMENTS),
        },
        movements=[*history, move(request, "cus_J", "churn", "80.00")],
    )
    expected = {"default": default, "stripe_compat": compat}
    return Scenario("S4", acct.layout, acct.events, acct.backfill, expected)


# --- S5 -------------------------------------------------------------------------------------


def s5(layout: str) -> Scenario:
    """Two subscriptions, one customer (July 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S5")
    acct.price("price_L1", amount="40.00", nickname="Add-on")
    acct.price("price_L2", amount="60.00", nickname="Core")
    acct.price("price_M", amount="100.00", nickname="Pro")
    l1_start, m_start, l2_start = at(2025, 6, 1, 10), at(2025, 6, 5, 10), at(2025, 6, 10, 10)
    l1_end, l2_end = at(2025, 7, 5, 15), at(2025, 7, 20, 15)
    _start(acct, "L1", [Item("price_L1")], l1_start, customer=acct.customer("cus_L", at=l1_start))
    _start(acct, "M", [Item("price_M")], m_start)
    _start(acct, "L2", [Item("price_L2")], l2_start, customer="cus_L")
    _cycle(acct, at(2025, 7, 1, 10), "sub_L1")
    _cycle(acct, at(2025, 7, 5, 10), "sub_M")
    acct.cancel("sub_L1", at=l1_end)
    _cycle(acct, at(2025, 7, 10, 10), "sub_L2")
    acct.cancel("sub_L2", at=l2_end)
    default = Expected(
        periods={
            "2025-07": {
                "mrr_start": "200.00",
                "contraction": "40.00",
                "churn": "60.00",
                "mrr_end": "100.00",
                "churned_customers": 1,
                "customer_churn_rate": "0.5000",
                "churned_revenue": "100.00",
                "gross_mrr_churn_rate": "0.5000",
                "nrr": "0.5000",
                "grr": "0.5000",
                "arpu": "100.00",
                "ltv": "200.00",
                # A ratio, written like the rates: 0.00 -> "0.0000".
                "quick_ratio": "0.0000",
            }
        },
        other_figures={"2025-07": {"subscriptions_canceled": 2}},
        movements=[
            move(l1_start, "cus_L", "new", "40.00"),
            move(m_start, "cus_M", "new", "100.00"),
            move(l2_start, "cus_L", "expansion", "60.00"),
            move(l1_end, "cus_L", "contraction", "40.00"),
            move(l2_end, "cus_L", "churn", "60.00"),
        ],
    )
    return Scenario("S5", acct.layout, acct.events, acct.backfill, {"default": default})


# --- S6 -------------------------------------------------------------------------------------


def s6(layout: str) -> Scenario:
    """Coupons: forever, repeating, once (August-October 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S6")
    acct.price("price_N", amount="100.00", nickname="Pro")
    acct.price("price_O", amount="50.00", nickname="Starter")
    acct.price("price_P", amount="240.00", interval="year", nickname="Annual")
    acct.coupon("TWENTY_FOREVER", percent_off="20", duration="forever")
    acct.coupon("TEN_OFF_2M", amount_off="10.00", duration="repeating", duration_in_months=2)
    acct.coupon("FIRST_YEAR_FREE", percent_off="100", duration="once")
    start, september, october = at(2025, 8, 1), at(2025, 9, 1), at(2025, 10, 1)
    _start(acct, "N", [Item("price_N")], start, coupon="TWENTY_FOREVER")
    _start(acct, "O", [Item("price_O")], start, coupon="TEN_OFF_2M")
    # 100% off once: the first invoice is 0.00 and paid without a charge.
    _start(acct, "P", [Item("price_P")], start, coupon="FIRST_YEAR_FREE")
    _cycle(acct, september, "sub_N", "sub_O")
    acct.renew("sub_N", at=october)
    n_october = acct.bill("sub_N", at=october, outcome="draft")
    # The repeating discount's `end` is 10-01 00:00, the renewal's instant.
    acct.renew("sub_O", at=october, drop_discount=True)
    o_october = acct.bill("sub_O", at=october, outcome="draft")
    _settle(acct, n_october, october + HOUR)
    _settle(acct, o_october, october + HOUR)
    default = Expected(
        periods={
            "2025-08": {
                "new": "140.00",
                "mrr_end": "140.00",
                "active_customers": 3,
                "arpu": "46.67",
                "gross_revenue": "120.00",
            },
            "2025-09": dict(NO_MOVEMENTS),
            "2025-10": {
                "expansion": "10.00",
                "mrr_end": "150.00",
                "nrr": "1.0714",
                "grr": "1.0000",
            },
        },
        movements=[
            move(start, "cus_N", "new", "80.00"),
            move(start, "cus_O", "new", "40.00"),
            move(start, "cus_P", "new", "20.00"),
            move(october, "cus_O", "expansion", "10.00"),
        ],
    )
    compat = Expected(
        settings=dict(STRIPE_COMPAT),
        periods={"2025-08": {"new": "150.00"}, "2025-10": dict(NO_MOVEMENTS)},
        movements=[
            move(start, "cus_N", "new", "80.00"),
            move(start, "cus_O", "new", "50.00"),
            move(start, "cus_P", "new", "20.00"),
        ],
    )
    expected = {"default": default, "stripe_compat": compat}
    return Scenario("S6", acct.layout, acct.events, acct.backfill, expected)


def s6_annual(layout: str) -> Scenario:
    """S6's aside: 120.00/year with 24.00 off forever has MRR 8.00 (amount_off is per
    invoice, here per year)."""
    acct = StripeAccount(as_layout(layout), namespace="S6-annual")
    acct.price("price_Q", amount="120.00", interval="year", nickname="Annual")
    acct.coupon("TWENTY_FOUR_OFF", amount_off="24.00", duration="forever")
    start = at(2025, 8, 1)
    _start(acct, "Q", [Item("price_Q")], start, coupon="TWENTY_FOUR_OFF")
    default = Expected(
        snapshots={instant(at(2025, 9, 1)): {"mrr": "8.00"}},
        movements=[move(start, "cus_Q", "new", "8.00")],
    )
    return Scenario("S6-annual", acct.layout, acct.events, acct.backfill, {"default": default})


# --- S7 -------------------------------------------------------------------------------------


def s7(layout: str) -> Scenario:
    """New and gone in one month, a refund, a voided invoice (November 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S7")
    acct.price("price_S", amount="100.00", nickname="Pro")
    acct.price("price_T", amount="1200.00", interval="year", nickname="Annual")
    acct.price("price_U", amount="500.00", interval=None, nickname="Workshop")
    s_start, t_start = at(2025, 10, 1), at(2025, 11, 1, 9)
    t_end = at(2025, 11, 20, 12)
    _start(acct, "S", [Item("price_S")], s_start)
    _cycle(acct, at(2025, 11, 1), "sub_S")
    t_invoice = _start(acct, "T", [Item("price_T")], t_start)
    # A one-off invoice, no subscription: finalized, then voided; never paid.
    acct.customer("cus_U", at=at(2025, 11, 5, 10))
    workshop = Line("Implementation workshop", "500.00", "price_U")
    u_invoice = acct.create_invoice(
        "cus_U", [workshop], at=at(2025, 11, 5, 10), collection_method="send_invoice"
    )
    acct.finalize_invoice(u_invoice, at=at(2025, 11, 5, 10, 30))
    acct.void_invoice(u_invoice, at=at(2025, 11, 6, 10))
    acct.cancel("sub_T", at=t_end)
    [t_charge] = acct.charges_of(t_invoice)
    acct.refund(t_charge, at=t_end + timedelta(minutes=1))
    default = Expected(
        periods={
            "2025-11": {
                "mrr_start": "100.00",
                "new": "100.00",
                # "churned MRR 100.00" is the same figure: churned_mrr = churn.
                "churn": "100.00",
                "mrr_end": "100.00",
                "customer_churn_rate": "0.0000",
                # "stripe30 at 12-01": November's end.
                "customer_churn_rate_stripe30": "0.5000",
                "nrr": "1.0000",
                "grr": "1.0000",
                "quick_ratio": "1.0000",
                "gross_revenue": "1300.00",
                "refunds": "1200.00",
                "net_revenue": "100.00",
                "fees": "38.30",
                "net_volume": "61.70",
            }
        },
        movements=[
            move(s_start, "cus_S", "new", "100.00"),
            move(t_start, "cus_T", "new", "100.00"),
            move(t_end, "cus_T", "churn", "100.00"),
        ],
    )
    return Scenario("S7", acct.layout, acct.events, acct.backfill, {"default": default})


# --- S8 -------------------------------------------------------------------------------------


def s8(layout: str) -> Scenario:
    """Metered item, one-time item, paused collection (January-April 2026)."""
    acct = StripeAccount(as_layout(layout), namespace="S8")
    acct.price("price_seat", amount="30.00", nickname="Seat")
    acct.price("price_calls", amount="0.01", usage_type="metered", nickname="API calls")
    acct.price("price_onboarding", amount="200.00", interval=None, nickname="Onboarding")
    start, february, pause = at(2026, 1, 1), at(2026, 2, 1), at(2026, 2, 10, 12)
    march, april = at(2026, 3, 1), at(2026, 4, 1)
    acct.customer("cus_X", at=start)
    acct.subscribe("sub_X", "cus_X", [Item("price_seat", 2), Item("price_calls", None)], at=start)
    onboarding = Line("Onboarding", "200.00", "price_onboarding")
    acct.bill("sub_X", at=start, billing_reason="subscription_create", extra_lines=[onboarding])
    calls = acct.item_id("sub_X", "price_calls")
    _cycle(acct, february, "sub_X", usage={calls: 50_000})
    acct.pause_collection("sub_X", at=pause, behavior="void", resumes_at=april)
    acct.renew("sub_X", at=march)
    acct.bill("sub_X", at=march, outcome="void")
    # The pause ends at `resumes_at`, the same instant as the April renewal.
    acct.renew("sub_X", at=april, resume_collection=True)
    acct.bill("sub_X", at=april, settle_at=april + HOUR)
    default = Expected(
        periods={
            "2026-01": {
                "new": "60.00",
                "gross_revenue": "260.00",
                "recurring_revenue": "60.00",
                "one_time_revenue": "200.00",
            },
            "2026-02": {
                "contraction": "60.00",
                "mrr_end": "0.00",
                "active_customers": 0,
                "paused_customers": 1,
                "churned_customers": 0,
                "customer_churn_rate": "0.0000",
                "nrr": "0.0000",
                "arpu": None,
                "gross_revenue": "560.00",
                "recurring_revenue": "60.00",
                "usage_revenue": "500.00",
            },
            "2026-03": {**NO_MOVEMENTS, "nrr": None, "gross_revenue": "0.00"},
            "2026-04": {"expansion": "60.00", "mrr_end": "60.00", "active_customers": 1},
        },
        movements=[
            move(start, "cus_X", "new", "60.00"),
            move(pause, "cus_X", "contraction", "60.00"),
            move(april, "cus_X", "expansion", "60.00"),
        ],
    )
    # "MRR 60.00 throughout": from the start on 01-01 00:00, so January starts at 0.
    compat = Expected(
        settings=dict(STRIPE_COMPAT),
        periods={
            "2026-01": {"mrr_end": "60.00"},
            **{
                month: {"mrr_start": "60.00", **NO_MOVEMENTS, "mrr_end": "60.00"}
                for month in ("2026-02", "2026-03", "2026-04")
            },
        },
        movements=[move(start, "cus_X", "new", "60.00")],
    )
    expected = {"default": default, "stripe_compat": compat}
    return Scenario("S8", acct.layout, acct.events, acct.backfill, expected)


# --- S9 -------------------------------------------------------------------------------------


def s9(layout: str) -> Scenario:
    """Graduated tiers, quantity down, a 100% forever coupon (March-April 2025)."""
    acct = StripeAccount(as_layout(layout), namespace="S9")
    tiers = (Tier(10, "10.00"), Tier(None, "8.00"))
    acct.price("price_AB", tiers=tiers, tiers_mode="graduated", nickname="Seats")
    acct.coupon("FREE_FOREVER", percent_off="100", duration="forever")
    start, fewer = at(2025, 2, 1), at(2025, 3, 10, 12)
    free, paying = at(2025, 3, 20, 12), at(2025, 4, 5, 12)
    _start(acct, "AB", [Item("price_AB", 12)], start)
    _cycle(acct, at(2025, 3, 1), "sub_AB")
    # No proration (proration_behavior=none): the change only shows on later invoices.
    acct.update_items("sub_AB", at=fewer, quantity=10)
    acct.add_discount("sub_AB", "FREE_FOREVER", at=free)
    _cycle(acct, at(2025, 4, 1), "sub_AB")  # 100.00 less 100%: 0.00, no charge
    acct.remove_discount("sub_AB", at=paying)
    default = Expected(
        periods={
            "2025-03": {
                # The "Given" state (quantity 12, since 02-01) is MRR at 03-01.
                "mrr_start": "116.00",
                "contraction": "16.00",
                "churn": "100.00",
                "mrr_end": "0.00",
                "customer_churn_rate": "1.0000",
                "nrr": "0.0000",
                "grr": "0.0000",
                "churned_revenue": "116.00",
                "subscriptions_by_status": {"active": 1},
            },
            "2025-04": {
                "reactivation": "100.00",
                "mrr_end": "100.00",
                "customer_churn_rate": None,
            },
        },
        other_figures={"2025-03": {"paying_subscriptions": 0}},
        movements=[
            move(start, "cus_AB", "new", "116.00"),
            move(fewer, "cus_AB", "contraction", "16.00"),
            move(free, "cus_AB", "churn", "100.00"),
            move(paying, "cus_AB", "reactivation", "100.00"),
        ],
    )
    free_active = Expected(
        settings={"free_customer_handling": "active"},
        periods={
            "2025-03": {"contraction": "116.00", "churn": "0.00", "customer_churn_rate": "0.0000"},
            "2025-04": {"expansion": "100.00"},
        },
        movements=[
            move(start, "cus_AB", "new", "116.00"),
            move(fewer, "cus_AB", "contraction", "16.00"),
            move(free, "cus_AB", "contraction", "100.00"),
            move(paying, "cus_AB", "expansion", "100.00"),
        ],
    )
    expected = {"default": default, "free_customer_handling_active": free_active}
    return Scenario("S9", acct.layout, acct.events, acct.backfill, expected)


# --- test clocks ----------------------------------------------------------------------------


def _on_test_clock(acct: StripeAccount, sent: datetime) -> None:
    """Date the events as a test clock sends them: `created` in wall-clock time (from `sent`,
    10 s apart), every field of the objects in the clock's simulated time."""
    clock = f"clock_{acct.namespace}"
    for i, event in enumerate(acct.events):
        event["created"] = unix(sent) + 10 * i
        obj = event["data"]["object"]
        if obj["object"] in ("customer", "subscription"):
            obj["test_clock"] = clock


def tc1(layout: str) -> Scenario:
    """A test clock: 10.00/month from 2023-09-01, renewed 10-01, canceled 10-15; its events
    sent in December, 10 s apart. The churn is October's, at `ended_at`."""
    acct = StripeAccount(as_layout(layout), namespace="TC1")
    acct.price("price_TC1", amount="10.00", nickname="Basic")
    start, renewal, end = at(2023, 9, 1), at(2023, 10, 1), at(2023, 10, 15)
    acct.subscribe("sub_TC1", acct.customer("cus_TC1", at=start), [Item("price_TC1")], at=start)
    acct.renew("sub_TC1", at=renewal)
    acct.cancel("sub_TC1", at=end)
    _on_test_clock(acct, at(2023, 12, 5, 14))
    default = Expected(
        periods={
            "2023-09": {"mrr_start": "0.00", "new": "10.00", "mrr_end": "10.00"},
            "2023-10": {
                "mrr_start": "10.00",
                **NO_MOVEMENTS,
                "churn": "10.00",
                "mrr_end": "0.00",
            },
            "2023-12": {"mrr_start": "0.00", **NO_MOVEMENTS, "mrr_end": "0.00"},
        },
        movements=[move(start, "cus_TC1", "new", "10.00"), move(end, "cus_TC1", "churn", "10.00")],
    )
    return Scenario("TC1", acct.layout, acct.events, acct.backfill, {"default": default})


def tc2(layout: str) -> Scenario:
    """A test clock: a trial from 2023-09-01 to 09-15, converted to 25.00/month at
    `trial_end` and renewed 10-15; its events sent in December. New MRR at `trial_end`."""
    acct = StripeAccount(as_layout(layout), namespace="TC2")
    acct.price("price_TC2", amount="25.00", nickname="Plus")
    start, trial_end, renewal = at(2023, 9, 1), at(2023, 9, 15), at(2023, 10, 15)
    customer = acct.customer("cus_TC2", at=start)
    acct.subscribe("sub_TC2", customer, [Item("price_TC2")], at=start, trial_end=trial_end)
    acct.renew("sub_TC2", at=trial_end, status="active")
    acct.renew("sub_TC2", at=renewal)
    _on_test_clock(acct, at(2023, 12, 5, 14))
    default = Expected(
        periods={
            "2023-09": {"mrr_start": "0.00", "new": "25.00", "mrr_end": "25.00"},
            "2023-10": {"mrr_start": "25.00", **NO_MOVEMENTS, "mrr_end": "25.00"},
            "2023-12": {"mrr_start": "25.00", **NO_MOVEMENTS, "mrr_end": "25.00"},
        },
        snapshots={
            instant(at(2023, 9, 10)): {
                "mrr": "0.00",
                "trialing_customers": 1,
                "subscriptions_by_status": {"trialing": 1},
            },
            instant(at(2023, 9, 20)): {"mrr": "25.00", "subscriptions_by_status": {"active": 1}},
        },
        movements=[move(trial_end, "cus_TC2", "new", "25.00")],
    )
    return Scenario("TC2", acct.layout, acct.events, acct.backfill, {"default": default})


def tc3(layout: str) -> Scenario:
    """A test clock advanced past the wall clock: 20.00/month from 2023-09-01, renewed 10-01,
    set to cancel at the period's end, ended 11-01; its events sent on 2023-08-20, before
    every time they state. Each change is dated at its stated time, not at `created`."""
    acct = StripeAccount(as_layout(layout), namespace="TC3")
    acct.price("price_TC3", amount="20.00", nickname="Team")
    start, renewal, request, end = at(2023, 9, 1), at(2023, 10, 1), at(2023, 10, 5), at(2023, 11, 1)
    acct.subscribe("sub_TC3", acct.customer("cus_TC3", at=start), [Item("price_TC3")], at=start)
    acct.renew("sub_TC3", at=renewal)
    acct.cancel_at_period_end("sub_TC3", at=request)
    acct.cancel("sub_TC3", at=end)
    _on_test_clock(acct, at(2023, 8, 20, 9))
    default = Expected(
        periods={
            "2023-08": {"mrr_start": "0.00", **NO_MOVEMENTS, "mrr_end": "0.00"},
            "2023-09": {"mrr_start": "0.00", "new": "20.00", "mrr_end": "20.00"},
            "2023-10": {"mrr_start": "20.00", **NO_MOVEMENTS, "mrr_end": "20.00"},
            "2023-11": {"mrr_start": "20.00", "churn": "20.00", "mrr_end": "0.00"},
        },
        movements=[move(start, "cus_TC3", "new", "20.00"), move(end, "cus_TC3", "churn", "20.00")],
    )
    return Scenario("TC3", acct.layout, acct.events, acct.backfill, {"default": default})


SCENARIOS: Final[dict[str, Callable[[str], Scenario]]] = {
    "S1": s1,
    "S2": s2,
    "S3": s3,
    "S4": s4,
    "S5": s5,
    "S6": s6,
    "S7": s7,
    "S8": s8,
    "S9": s9,
}
# Statements of SCENARIOS.md that stand outside the nine accounts.
EXTRA_SCENARIOS: Final[dict[str, Callable[[str], Scenario]]] = {"S6-annual": s6_annual}
# Subscriptions on Stripe test clocks: `created` in wall-clock time, the objects' own
# times simulated (cases drawn from outside sources, not from SCENARIOS.md).
TEST_CLOCK_SCENARIOS: Final[dict[str, Callable[[str], Scenario]]] = {
    "TC1": tc1,
    "TC2": tc2,
    "TC3": tc3,
}
ALL_SCENARIOS: Final[dict[str, Callable[[str], Scenario]]] = {
    **SCENARIOS,
    **EXTRA_SCENARIOS,
    **TEST_CLOCK_SCENARIOS,
}
