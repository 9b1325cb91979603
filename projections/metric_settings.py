"""The choices METRICS.md leaves to the user, with our defaults and the `stripe_compat`
profile that reproduces Stripe's Dashboard so the two can be reconciled."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

Activation = Literal["at_start", "at_first_payment"]
ChurnRecognition = Literal["ended_at", "scheduled"]
FreeCustomerHandling = Literal["churn", "active"]
ChurnFormula = Literal["cohort", "stripe30"]


@dataclass(frozen=True, slots=True)
class MetricSettings:
    subtract_repeating: bool = True
    subtract_once: bool = False
    activation: Activation = "at_start"
    churn_recognition: ChurnRecognition = "ended_at"
    delinquency_recovery_window_days: int = 30
    pause_counts: bool = False  # does a subscription with paused collection keep its MRR?
    free_customer_handling: FreeCustomerHandling = "churn"
    customer_churn_formula: ChurnFormula = "cohort"
    include_trials: bool = False  # trialing subscriptions count at their post-trial MRR

    def with_overrides(self, **values: object) -> MetricSettings:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **values)  # type: ignore[arg-type]


DEFAULT = MetricSettings()
STRIPE_COMPAT = MetricSettings(
    subtract_repeating=False,
    churn_recognition="scheduled",
    delinquency_recovery_window_days=0,
    pause_counts=True,
    customer_churn_formula="stripe30",
)
PROFILES = {"default": DEFAULT, "stripe_compat": STRIPE_COMPAT}
