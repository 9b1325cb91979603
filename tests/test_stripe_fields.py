"""projections.stripe_fields reads every Stripe layout we receive into the same typed records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from projections.stripe_fields import (
    BalanceTransaction,
    Charge,
    Customer,
    Dispute,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    PhaseItem,
    Price,
    Refund,
    StripeShapeError,
    Subscription,
    SubscriptionItem,
    SubscriptionSchedule,
    Tier,
    customer_of,
    from_unix,
    read_balance_transaction,
    read_charge,
    read_coupon,
    read_customer,
    read_discount,
    read_dispute,
    read_invoice,
    read_invoice_line,
    read_invoice_payment,
    read_object,
    read_price,
    read_refund,
    read_subscription,
    read_subscription_item,
    read_subscription_schedule,
    ref_id,
)
from tests.support.stripe_fixtures import event_2020, resource

Json = dict[str, Any]


def old(name: str) -> Json:
    """The object of a pre-2025 (API 2020-03-02) webhook envelope."""
    obj: Json = event_2020(name)["data"]["object"]
    return obj


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def basil_line() -> Json:
    line: Json = resource("invoice")["lines"]["data"][0]
    return line


def coupon_discount() -> Json:
    """A current-layout discount whose expanded coupon sits at `source.coupon`."""
    discount = resource("discount")
    discount["source"]["coupon"] = resource("coupon")
    return discount


# --- helpers -------------------------------------------------------------------------


def test_from_unix_gives_an_aware_utc_datetime() -> None:
    assert from_unix(1642645471) == datetime(2022, 1, 20, 2, 24, 31, tzinfo=UTC)


def test_from_unix_passes_none_through() -> None:
    assert from_unix(None) is None


def test_ref_id_reads_an_id_string_and_an_expanded_object_alike() -> None:
    assert ref_id("cus_QXg1o8vcGmoR32") == ref_id(resource("customer")) == "cus_QXg1o8vcGmoR32"


def test_ref_id_is_none_for_an_absent_reference() -> None:
    assert ref_id(None) is None


# --- prices and plans ----------------------------------------------------------------


def test_price_unit_amount_decimal_is_read_as_an_exact_fraction() -> None:
    price = resource("price")
    price["unit_amount_decimal"] = "1000.5"
    assert read_price(price).unit_amount == Fraction(2001, 2)


def test_price_decimal_from_a_stripe_python_dict_is_read_exactly() -> None:
    price = resource("price")
    price["unit_amount_decimal"] = Decimal("12.345")
    assert read_price(price).unit_amount == Fraction(2469, 200)


def test_price_reads_recurrence_and_transform_quantity() -> None:
    price = read_price(resource("price"))
    assert price == Price(
        id="price_1PgafmB7WZ01zgkW6dKueIc5",
        currency="usd",
        unit_amount=Fraction(2000),
        billing_scheme="per_unit",
        tiers_mode=None,
        tiers=(),
        interval="month",
        interval_count=1,
        usage_type="licensed",
        transform_divide_by=1592560163,
        transform_round="down",
        tax_behavior="unspecified",
        product="prod_QXg1hqf4jFNsqG",
        nickname=None,
    )


def test_legacy_plan_reads_amount_interval_and_transform_usage() -> None:
    plan = resource("plan")
    plan["amount_decimal"] = "1999.25"
    price = read_price(plan)
    assert (price.unit_amount, price.interval, price.interval_count) == (
        Fraction(7997, 4),
        "month",
        1,
    )
    assert (price.transform_divide_by, price.transform_round) == (1592560163, "down")


def test_legacy_plan_without_amount_decimal_reads_the_integer_amount() -> None:
    plan = resource("plan")
    del plan["amount_decimal"]
    assert read_price(plan).unit_amount == Fraction(2000)


def test_plan_from_before_products_reads_its_name_as_nickname() -> None:
    plan = resource("plan")
    del plan["nickname"]
    plan["name"] = "Gold (2017)"
    assert read_price(plan).nickname == "Gold (2017)"


def test_graduated_tiers_are_read_with_an_open_last_tier() -> None:
    price = resource("price")
    price.update(billing_scheme="tiered", tiers_mode="graduated", unit_amount=None)
    price["unit_amount_decimal"] = None
    price["tiers"] = [
        {"up_to": 10, "unit_amount": 500, "unit_amount_decimal": "500", "flat_amount": None},
        {"up_to": None, "unit_amount": 400, "unit_amount_decimal": "400", "flat_amount": 1000},
    ]
    read = read_price(price)
    assert (read.billing_scheme, read.tiers_mode, read.unit_amount) == ("tiered", "graduated", None)
    assert read.tiers == (
        Tier(up_to=10, unit_amount=Fraction(500), flat_amount=Fraction(0)),
        Tier(up_to=None, unit_amount=Fraction(400), flat_amount=Fraction(1000)),
    )


def test_volume_tiers_prefer_the_decimal_amounts() -> None:
    plan = resource("plan")
    plan.update(billing_scheme="tiered", tiers_mode="volume")
    plan["tiers"] = [
        {
            "up_to": 5,
            "unit_amount": 13,
            "unit_amount_decimal": "12.5",
            "flat_amount": 100,
            "flat_amount_decimal": "99.9",
        }
    ]
    tier = read_price(plan).tiers[0]
    assert (tier.unit_amount, tier.flat_amount) == (Fraction(25, 2), Fraction(999, 10))


def test_one_time_price_has_no_interval_and_counts_one() -> None:
    price = resource("price")
    price.update(type="one_time", recurring=None)
    read = read_price(price)
    assert (read.interval, read.interval_count, read.usage_type) == (None, 1, "licensed")


def test_metered_usage_type_is_read() -> None:
    price = resource("price")
    price["recurring"]["usage_type"] = "metered"
    assert read_price(price).usage_type == "metered"


def test_unknown_billing_scheme_is_rejected_rather_than_guessed() -> None:
    price = resource("price")
    price["billing_scheme"] = "per_seat_magic"
    with pytest.raises(StripeShapeError, match="billing_scheme"):
        read_price(price)


def test_malformed_decimal_string_is_rejected() -> None:
    price = resource("price")
    price["unit_amount_decimal"] = "12,50"
    with pytest.raises(StripeShapeError, match="unit_amount_decimal"):
        read_price(price)


# --- coupons and discounts -----------------------------------------------------------


def test_coupon_percent_off_number_becomes_an_exact_fraction() -> None:
    coupon = read_coupon(resource("coupon"))
    assert (coupon.percent_off, coupon.duration, coupon.duration_in_months) == (
        Fraction(51, 2),
        "forever",
        3,
    )


def test_discount_reads_an_expanded_coupon_at_the_old_coupon_field() -> None:
    discount = resource("discount")
    del discount["source"]
    discount["coupon"] = resource("coupon")
    read = read_discount(discount)
    assert read.coupon_id == "Z4OV52SU"
    assert read.coupon is not None and read.coupon.percent_off == Fraction(51, 2)


def test_discount_reads_a_coupon_id_at_source_coupon_from_clover() -> None:
    discount = resource("discount")
    discount["source"]["coupon"] = "Z4OV52SU"
    read = read_discount(discount)
    assert (read.coupon_id, read.coupon) == ("Z4OV52SU", None)


def test_discount_reads_an_expanded_coupon_at_source_coupon() -> None:
    read = read_discount(coupon_discount())
    assert read.coupon is not None and read.coupon.id == "Z4OV52SU"


def test_discount_start_and_end_are_aware_utc() -> None:
    read = read_discount(resource("discount"))
    assert (read.start, read.end) == (utc(1234567890), utc(1234567890))


# --- subscriptions -------------------------------------------------------------------


def test_subscription_period_is_read_from_the_subscription_in_the_old_layout() -> None:
    sub = read_subscription(old("subscription_updated"))
    assert (sub.current_period_start, sub.current_period_end) == (utc(1618980344), utc(1621572344))


def test_old_layout_items_carry_the_subscription_period() -> None:
    item = read_subscription(old("subscription_updated")).items[0]
    assert (item.current_period_start, item.current_period_end) == (
        utc(1618980344),
        utc(1621572344),
    )


def test_subscription_period_is_read_from_the_items_in_the_basil_layout() -> None:
    obj = resource("subscription")
    obj["items"]["data"][0].update(current_period_start=1721954054, current_period_end=1724632454)
    sub = read_subscription(obj)
    assert (sub.current_period_start, sub.current_period_end) == (utc(1721954054), utc(1724632454))


def test_subscription_period_is_the_earliest_item_period_when_items_differ() -> None:
    obj = resource("subscription")
    first = obj["items"]["data"][0]
    first.update(current_period_start=1721954054, current_period_end=1724632454)
    second = {**first, "id": "si_second", "current_period_start": 1722000000}
    second["current_period_end"] = 1723000000
    obj["items"]["data"].append(second)
    sub = read_subscription(obj)
    assert (sub.current_period_start, sub.current_period_end) == (utc(1721954054), utc(1723000000))


def test_subscription_item_reads_its_price_rather_than_its_plan() -> None:
    item = read_subscription_item(resource("subscription_item"))
    assert (item.price.billing_scheme, item.price.unit_amount) == ("per_unit", Fraction(2000))


def test_subscription_item_with_only_a_legacy_plan_reads_the_plan() -> None:
    obj = old("subscription_updated")["items"]["data"][0]
    del obj["price"]
    obj["plan"]["amount_decimal"] = "4900"
    item = read_subscription_item(obj)
    assert (item.price.id, item.price.unit_amount) == (
        "price_1IDQm5JDPojXS6LNM31hxKzp",
        Fraction(4900),
    )


def test_subscription_item_reads_discount_ids_and_expanded_discounts() -> None:
    obj = resource("subscription_item")
    obj["discounts"] = ["di_plain", coupon_discount()]
    item = read_subscription_item(obj)
    assert item.discount_ids == ("di_plain", "di_1Pgc6rB7WZ01zgkW7Al8Fal9")
    assert [d.id for d in item.discounts] == ["di_1Pgc6rB7WZ01zgkW7Al8Fal9"]


def test_subscription_reads_the_single_old_discount() -> None:
    obj = old("subscription_updated")
    discount = resource("discount")
    del discount["source"]
    discount["coupon"] = resource("coupon")
    obj["discount"] = discount
    sub = read_subscription(obj)
    assert sub.discount_ids == ("di_1Pgc6rB7WZ01zgkW7Al8Fal9",)
    assert sub.discounts[0].coupon is not None and sub.discounts[0].coupon.id == "Z4OV52SU"


def test_subscription_discounts_mix_ids_and_expanded_objects() -> None:
    obj = resource("subscription")
    obj["discounts"] = ["di_plain", coupon_discount()]
    sub = read_subscription(obj)
    assert sub.discount_ids == ("di_plain", "di_1Pgc6rB7WZ01zgkW7Al8Fal9")
    assert len(sub.discounts) == 1


def test_subscription_discount_in_old_and_new_fields_is_listed_once() -> None:
    obj = resource("subscription")
    obj["discount"] = coupon_discount()
    obj["discounts"] = ["di_1Pgc6rB7WZ01zgkW7Al8Fal9"]
    sub = read_subscription(obj)
    assert (sub.discount_ids, len(sub.discounts)) == (("di_1Pgc6rB7WZ01zgkW7Al8Fal9",), 1)


def test_subscription_without_currency_takes_its_items_currency() -> None:
    assert "currency" not in old("subscription_updated")
    assert read_subscription(old("subscription_updated")).currency == "usd"


def test_subscription_reads_cancellation_details_and_pause() -> None:
    obj = resource("subscription")
    obj["cancellation_details"].update(reason="payment_failed", feedback="too_expensive")
    sub = read_subscription(obj)
    assert (sub.cancellation_reason, sub.cancellation_feedback, sub.pause_behavior) == (
        "payment_failed",
        "too_expensive",
        "mark_uncollectible",
    )


def test_old_subscription_without_cancellation_details_reads_none() -> None:
    sub = read_subscription(old("subscription_deleted"))
    assert (sub.status, sub.ended_at, sub.cancellation_reason) == (
        "canceled",
        utc(1623149102),
        None,
    )


def test_subscription_metadata_is_a_read_only_mapping() -> None:
    metadata = read_subscription(old("subscription_updated")).metadata
    assert metadata["project_ref"] == "bfsfqqxvuglpyllejiwe"
    with pytest.raises(TypeError):
        metadata["project_ref"] = "changed"  # type: ignore[index]


def test_subscription_items_has_more_is_read() -> None:
    obj = resource("subscription")
    obj["items"]["has_more"] = True
    assert read_subscription(obj).items_has_more is True


def test_subscription_expanded_customer_reads_as_its_id() -> None:
    obj = old("subscription_created")
    obj["customer"] = resource("customer")
    assert read_subscription(obj).customer == "cus_QXg1o8vcGmoR32"


# --- subscription schedules ----------------------------------------------------------


def test_schedule_reads_phases_items_and_released_subscription() -> None:
    schedule = read_subscription_schedule(old("subscription_schedule_created"))
    assert schedule.released_subscription == "sub_1N1sg4JDPojXS6LNGfq3slwm"
    assert [p.items for p in schedule.phases][3] == (
        PhaseItem(price_id="price_1KCawmJDPojXS6LNahIn31Mr", quantity=1),
    )
    assert schedule.phases[0].start_date == utc(1682693619)


def test_schedule_reads_its_current_phase() -> None:
    schedule = read_subscription_schedule(resource("subscription_schedule"))
    assert (schedule.current_phase_start, schedule.current_phase_end) == (
        utc(1573629589),
        utc(1725067410),
    )


def test_schedule_phase_reads_the_old_coupon_and_new_discounts() -> None:
    obj = resource("subscription_schedule")
    phase = obj["phases"][0]
    phase["coupon"] = "OLDCOUPON"
    phase["discounts"] = [{"coupon": resource("coupon"), "discount": None}, {"discount": "di_x"}]
    read = read_subscription_schedule(obj).phases[0]
    assert (read.coupon_ids, read.discount_ids) == (("OLDCOUPON", "Z4OV52SU"), ("di_x",))


def test_schedule_phase_reads_items_under_the_pre_2020_plans_key() -> None:
    obj = old("subscription_schedule_created")
    phase = obj["phases"][0]
    phase["plans"] = [{"plan": "gold-monthly", "quantity": 3}]
    del phase["items"]
    read = read_subscription_schedule(obj).phases[0]
    assert read.items == (PhaseItem(price_id="gold-monthly", quantity=3),)


# --- invoices ------------------------------------------------------------------------


def test_invoice_subscription_is_read_from_the_top_level_in_the_old_layout() -> None:
    assert read_invoice(old("invoice_paid")).subscription == "sub_JsuPyCPhXWfZar"


def test_invoice_subscription_is_read_from_parent_in_the_basil_layout() -> None:
    obj = resource("invoice")
    obj["parent"]["subscription_details"]["subscription"] = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
    assert read_invoice(obj).subscription == "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"


def test_invoice_paid_flags_are_read_in_the_old_layout() -> None:
    invoice = read_invoice(old("invoice_paid"))
    assert (invoice.paid, invoice.paid_out_of_band, invoice.paid_at) == (
        True,
        False,
        utc(1642649110),
    )


def test_invoice_paid_follows_its_status_in_the_basil_layout() -> None:
    obj = resource("invoice")
    assert read_invoice(obj).paid is False
    obj["status"] = "paid"
    invoice = read_invoice(obj)
    assert (invoice.paid, invoice.paid_out_of_band) == (True, None)


def test_invoice_charge_comes_from_its_paid_payment_in_the_basil_layout() -> None:
    obj = resource("invoice")
    paid = old("invoice_payment_paid")
    paid["payment"] = {"type": "charge", "charge": "ch_1PgafuB7WZ01zgkWXYmPNZs8"}
    obj["payments"] = {"object": "list", "data": [resource("invoice_payment"), paid]}
    invoice = read_invoice(obj)
    assert (invoice.charge, invoice.payment_intent) == ("ch_1PgafuB7WZ01zgkWXYmPNZs8", None)


def test_invoice_payment_intent_comes_from_its_default_payment() -> None:
    obj = resource("invoice")
    obj["payments"] = {"object": "list", "data": [old("invoice_payment_paid")]}
    assert read_invoice(obj).payment_intent == "pi_103Q0w2eZvKYlo2C364X582Z"


def test_invoice_old_charge_is_read_directly() -> None:
    obj = old("invoice_paid")
    obj["charge"] = {"id": "ch_3Kl36gJDPojXS6LN0DCM4A8l", "object": "charge"}
    assert read_invoice(obj).charge == "ch_3Kl36gJDPojXS6LN0DCM4A8l"


def test_invoice_tax_sums_total_taxes_in_the_basil_layout() -> None:
    obj = resource("invoice")
    obj["total_taxes"] = [
        {"amount": 190, "tax_behavior": "exclusive", "type": "tax_rate_details"},
        {"amount": 7, "tax_behavior": "inclusive", "type": "tax_rate_details"},
    ]
    assert read_invoice(obj).tax == 197


def test_invoice_tax_sums_total_tax_amounts_when_tax_is_null() -> None:
    obj = old("invoice_paid")
    obj["total_tax_amounts"] = [{"amount": 120, "inclusive": False, "tax_rate": "txr_1"}]
    assert read_invoice(obj).tax == 120


def test_invoice_discount_ids_combine_the_old_discount_and_the_discounts_array() -> None:
    obj = old("invoice_paid")
    obj["discount"] = coupon_discount()
    obj["discounts"] = ["di_1Pgc6rB7WZ01zgkW7Al8Fal9", "di_second"]
    assert read_invoice(obj).discount_ids == ("di_1Pgc6rB7WZ01zgkW7Al8Fal9", "di_second")


def test_invoice_lines_and_has_more_are_read() -> None:
    obj = old("invoice_paid")
    obj["lines"]["has_more"] = True
    invoice = read_invoice(obj)
    assert ([line.id for line in invoice.lines], invoice.lines_has_more) == (
        ["il_1KJqKBJDPojXS6LND42vdxtT"],
        True,
    )


def test_upcoming_invoice_without_an_id_is_read() -> None:
    obj = resource("invoice")
    del obj["id"]
    assert read_invoice(obj).id is None


def test_invoice_times_are_aware_utc() -> None:
    invoice = read_invoice(old("invoice_paid"))
    assert invoice.created == utc(1642645471)
    assert invoice.finalized_at is not None and invoice.finalized_at.tzinfo is UTC


# --- invoice lines -------------------------------------------------------------------


def test_old_line_reads_type_proration_subscription_and_item() -> None:
    line = read_invoice_line(old("invoice_paid")["lines"]["data"][0])
    assert (line.kind, line.proration, line.subscription, line.subscription_item) == (
        "subscription",
        False,
        "sub_JsuPyCPhXWfZar",
        "si_JsuPFzrp9vSWxa",
    )


def test_old_line_reads_its_full_price_object() -> None:
    line = read_invoice_line(old("invoice_paid")["lines"]["data"][0])
    assert line.price_id == "price_1IDQm5JDPojXS6LNM31hxKzp"
    assert line.price is not None and line.price.interval == "month"
    assert line.unit_amount == Fraction(0)


def test_old_line_with_only_a_plan_reads_the_plan_as_its_price() -> None:
    obj = old("invoice_paid")["lines"]["data"][0]
    del obj["price"]
    obj["plan"]["amount"] = 1500
    obj["plan"]["amount_decimal"] = "1500"
    line = read_invoice_line(obj)
    assert line.price is not None and line.price.unit_amount == Fraction(1500)


def test_basil_line_reads_its_origin_from_parent_details() -> None:
    line = read_invoice_line(basil_line())
    assert (line.kind, line.proration, line.invoice_item, line.subscription) == (
        "invoiceitem",
        True,
        "invoice_item",
        None,
    )


def test_basil_subscription_line_reads_subscription_item_details() -> None:
    obj = basil_line()
    obj["parent"]["type"] = "subscription_item_details"
    obj["parent"]["subscription_item_details"]["proration"] = False
    line = read_invoice_line(obj)
    assert (line.kind, line.proration, line.subscription, line.subscription_item) == (
        "subscription",
        False,
        "subscription",
        "subscription_item",
    )


def test_basil_line_reads_its_price_id_from_pricing() -> None:
    obj = basil_line()
    obj["pricing"]["price_details"] = {"price": "price_1PgafmB7WZ01zgkW6dKueIc5", "product": "p"}
    line = read_invoice_line(obj)
    assert (line.price_id, line.price) == ("price_1PgafmB7WZ01zgkW6dKueIc5", None)


def test_basil_line_reads_an_expanded_price_from_pricing() -> None:
    obj = basil_line()
    obj["pricing"]["price_details"] = {"price": resource("price"), "product": "p"}
    line = read_invoice_line(obj)
    assert line.price is not None and line.price.transform_round == "down"


def test_basil_line_unit_amount_decimal_is_exact() -> None:
    obj = basil_line()
    obj["pricing"]["unit_amount_decimal"] = "1000.5"
    assert read_invoice_line(obj).unit_amount == Fraction(2001, 2)


def test_old_line_tax_amounts_flag_inclusive_tax() -> None:
    obj = old("invoice_paid")["lines"]["data"][0]
    obj["tax_amounts"] = [{"amount": 83, "inclusive": True, "tax_rate": "txr_1"}]
    line = read_invoice_line(obj)
    assert (line.tax_amount, line.inclusive_tax_amount, line.tax_inclusive) == (83, 83, True)


def test_basil_line_taxes_read_tax_behavior() -> None:
    obj = basil_line()
    obj["taxes"] = [{"amount": 190, "tax_behavior": "exclusive", "type": "tax_rate_details"}]
    line = read_invoice_line(obj)
    assert (line.tax_amount, line.inclusive_tax_amount, line.tax_inclusive) == (190, 0, False)


def test_line_without_taxes_takes_tax_inclusiveness_from_its_price() -> None:
    obj = old("invoice_paid")["lines"]["data"][0]
    obj["price"]["tax_behavior"] = "inclusive"
    line = read_invoice_line(obj)
    assert (line.tax_amount, line.tax_inclusive) == (0, True)


def test_line_discount_amount_sums_its_discount_amounts() -> None:
    obj = basil_line()
    obj["discount_amounts"] = [{"amount": 250, "discount": "di_a"}, {"amount": 50, "discount": "b"}]
    assert read_invoice_line(obj).discount_amount == 300


def test_pre_2019_invoice_item_line_id_is_the_invoice_item() -> None:
    obj = old("invoice_deleted")["lines"]["data"][0]
    obj["id"] = "ii_1KJq0ZJDPojXS6LNhmLcV0Jn"
    obj.pop("invoice_item", None)
    assert read_invoice_line(obj).invoice_item == "ii_1KJq0ZJDPojXS6LNhmLcV0Jn"


def test_line_period_is_aware_utc() -> None:
    line = read_invoice_line(old("invoice_paid")["lines"]["data"][0])
    assert (line.period_start, line.period_end) == (utc(1642645280), utc(1645323680))


# --- invoice payments ----------------------------------------------------------------


def test_invoice_payment_reads_its_payment_intent_and_paid_at() -> None:
    payment = read_invoice_payment(old("invoice_payment_paid"))
    assert payment == InvoicePayment(
        id="inpay_1M3USa2eZvKYlo2CBjuwbq0N",
        invoice="in_103Q0w2eZvKYlo2C5PYwf6Wf",
        amount_paid=2000,
        amount_requested=2000,
        currency="usd",
        status="paid",
        payment_type="payment_intent",
        charge=None,
        payment_intent="pi_103Q0w2eZvKYlo2C364X582Z",
        payment_record=None,
        created=utc(1391288554),
        paid_at=utc(1391288554),
        canceled_at=None,
        is_default=True,
        livemode=False,
    )


def test_unpaid_invoice_payment_reads_null_amount_paid_as_none() -> None:
    payment = read_invoice_payment(resource("invoice_payment"))
    assert (payment.amount_paid, payment.paid_at, payment.payment_intent) == (None, None, None)


# --- charges, refunds, disputes, balance transactions --------------------------------


def test_charge_reads_its_invoice_in_the_old_layout() -> None:
    assert read_charge(old("charge_refunded")).invoice == "in_1KJdKkJDPojXS6LNSwSWkZSN"


def test_charge_has_no_invoice_in_the_basil_layout() -> None:
    assert read_charge(resource("charge")).invoice is None


def test_charge_reads_its_embedded_refunds() -> None:
    charge = read_charge(old("charge_refunded"))
    assert [r.id for r in charge.refunds] == ["re_3Kl36gJDPojXS6LN0eP4yPDz"]
    assert (charge.amount_refunded, charge.refunded, charge.refunds_has_more) == (2500, True, False)


def test_charge_without_a_refunds_list_is_incomplete_when_something_was_refunded() -> None:
    obj = old("charge_refunded")
    del obj["refunds"]
    charge = read_charge(obj)
    assert (charge.refunds, charge.refunds_has_more) == ((), True)


def test_charge_fee_is_read_from_an_expanded_balance_transaction() -> None:
    obj = resource("charge")
    txn = resource("balance_transaction")
    txn["fee"] = 59
    obj["balance_transaction"] = txn
    charge = read_charge(obj)
    assert (charge.balance_transaction, charge.fee) == ("txn_1PgaxNB7WZ01zgkWEV3TLf40", 59)


def test_charge_fee_is_none_when_the_balance_transaction_is_an_id() -> None:
    assert read_charge(old("charge_succeeded")).fee is None


def test_refund_reads_its_references() -> None:
    refund = read_refund(old("refund_created"))
    assert refund == Refund(
        id="re_1Nispe2eZvKYlo2Cd31jOCgZ",
        charge="ch_1NirD82eZvKYlo2CIvbtLWuY",
        payment_intent="pi_1GszsK2eZvKYlo2CfhZyoZLp",
        customer=None,
        amount=1000,
        currency="usd",
        created=utc(1692942318),
        status="succeeded",
        reason=None,
        balance_transaction="txn_1Nispe2eZvKYlo2CYezqFhEx",
    )


def test_refund_reads_the_customer_dahlia_added() -> None:
    obj = resource("refund")
    obj["customer"] = "cus_QXg1o8vcGmoR32"
    assert read_refund(obj).customer == "cus_QXg1o8vcGmoR32"


def test_dispute_sums_fees_and_nets_over_its_balance_transactions() -> None:
    obj = old("charge_dispute_funds_withdrawn")
    withdrawal = resource("balance_transaction")
    withdrawal.update(id="txn_withdrawal", amount=-1000, fee=1500, net=-2500)
    obj["balance_transactions"] = [withdrawal]
    dispute = read_dispute(obj)
    assert (dispute.balance_transaction_ids, dispute.fee_total, dispute.net_total) == (
        ("txn_withdrawal",),
        1500,
        -2500,
    )


def test_dispute_reads_each_embedded_balance_transaction() -> None:
    obj = old("charge_dispute_funds_withdrawn")
    withdrawal = resource("balance_transaction")
    withdrawal.update(id="txn_withdrawal", amount=-1000, fee=1500, net=-2500, source=obj["id"])
    obj["balance_transactions"] = [withdrawal]
    [txn] = read_dispute(obj).balance_transactions
    assert (txn.id, txn.fee, txn.source) == ("txn_withdrawal", 1500, "dp_1MLuxQJDPojXS6LNrukJCBBG")


def test_dispute_without_balance_transactions_totals_zero() -> None:
    dispute = read_dispute(old("charge_dispute_created"))
    assert (dispute.balance_transaction_ids, dispute.fee_total, dispute.net_total) == ((), 0, 0)
    assert dispute.balance_transactions == ()


def test_balance_transaction_exchange_rate_is_an_exact_fraction() -> None:
    obj = resource("balance_transaction")
    obj["exchange_rate"] = 0.912345
    assert read_balance_transaction(obj).exchange_rate == Fraction(912345, 1_000_000)


def test_balance_transaction_expanded_source_reads_as_its_id() -> None:
    obj = resource("balance_transaction")
    obj["source"] = resource("charge")
    txn = read_balance_transaction(obj)
    assert (txn.source, txn.available_on) == ("ch_1PgafuB7WZ01zgkWXYmPNZs8", utc(1234567890))


# --- customers -----------------------------------------------------------------------


def test_customer_is_read() -> None:
    customer = read_customer(old("customer_updated"))
    assert (customer.email, customer.name, customer.deleted, customer.created) == (
        "billz@supabase.io",
        "Copple",
        False,
        utc(1609763141),
    )


def test_deleted_customer_reads_with_only_its_id() -> None:
    customer = read_customer(old("customer_deleted"))
    assert (customer.id, customer.deleted, customer.email, customer.livemode) == (
        "cus_IhGfebO16cMIGN",
        True,
        None,
        None,
    )


def test_customer_name_falls_back_to_business_name() -> None:
    obj = resource("customer")
    obj["business_name"] = "Acme GmbH"
    assert read_customer(obj).name == "Acme GmbH"


# --- missing fields and ids ----------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "reader"),
    [
        (old("invoice_paid"), read_invoice),
        (resource("invoice"), read_invoice),
        (old("subscription_updated"), read_subscription),
        (old("charge_refunded"), read_charge),
        (resource("dispute"), read_dispute),
        (resource("subscription_schedule"), read_subscription_schedule),
    ],
)
def test_missing_fields_read_as_none_or_empty_not_key_error(obj: Json, reader: Any) -> None:
    bare = {key: obj[key] for key in ("id", "object")}
    read = reader(bare)
    assert read.id == obj["id"] and getattr(read, "created", None) is None


def test_object_without_an_id_is_rejected() -> None:
    obj = resource("charge")
    del obj["id"]
    with pytest.raises(StripeShapeError, match="charge object has no id"):
        read_charge(obj)


# --- dispatch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "record_type"),
    [
        (resource("price"), Price),
        (resource("plan"), Price),
        (resource("subscription_item"), SubscriptionItem),
        (resource("subscription"), Subscription),
        (resource("subscription_schedule"), SubscriptionSchedule),
        (resource("line_item"), InvoiceLine),
        (resource("invoice"), Invoice),
        (resource("invoice_payment"), InvoicePayment),
        (resource("charge"), Charge),
        (resource("refund"), Refund),
        (resource("dispute"), Dispute),
        (resource("balance_transaction"), BalanceTransaction),
        (resource("customer"), Customer),
        (resource("deleted_customer"), Customer),
    ],
)
def test_read_object_dispatches_on_the_object_tag(obj: Json, record_type: type) -> None:
    assert isinstance(read_object(obj), record_type)


def test_read_object_is_none_for_kinds_not_modelled() -> None:
    assert read_object(resource("payout")) is None


def test_customer_of_a_customer_is_its_own_id() -> None:
    assert customer_of(old("customer_deleted")) == "cus_IhGfebO16cMIGN"


def test_customer_of_an_old_refund_is_none() -> None:
    assert customer_of(old("refund_created")) is None


def test_customer_of_a_dispute_is_found_through_its_expanded_charge() -> None:
    obj = old("charge_dispute_created")
    obj["charge"] = old("charge_refunded")
    assert customer_of(obj) == "cus_J7Mkgr8mvbl1eK"


def test_customer_of_accepts_a_record_already_read() -> None:
    assert customer_of(read_invoice(old("invoice_paid"))) == "cus_JsuO3bmrj0QlAw"
