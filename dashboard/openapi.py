"""The OpenAPI 3.1 description of `/api/v1`, served at `/api/v1/openapi.json`; a test checks
real answers against it."""

from __future__ import annotations

from typing import Any, Final

_MONEY: Final = {"type": ["string", "null"], "pattern": r"^-?\d+(\.\d+)?$"}
_RATE: Final = {"type": ["string", "null"], "pattern": r"^-?\d+(\.\d+)?$"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_WHEN: Final = {"type": "string", "format": "date-time"}
_IDS: Final = {"type": "array", "items": {"type": "string"}}

_PERIOD_MONEY: Final = [
    "mrr_start",
    "mrr_end",
    "arr_end",
    "committed_mrr_end",
    "new",
    "expansion",
    "reactivation",
    "contraction",
    "churn",
    "fx_adjustment",
    "net_new_mrr",
    "churned_revenue",
    "arpu",
    "ltv",
    "gross_revenue",
    "refunds",
    "fees",
    "tax_collected",
    "recurring_revenue",
    "usage_revenue",
    "one_time_revenue",
    "out_of_band_revenue",
    "net_revenue",
    "net_volume",
]
_PERIOD_COUNTS: Final = [
    "all_customers",
    "active_customers",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
    "paused_customers",
    "trialing_customers",
    "delinquent_customers",
    "paying_subscriptions",
    "subscriptions_canceled",
    "subscriptions_incomplete_expired",
    "subscriptions_pending_cancellation",
    "trials_started",
    "trials_converted",
]
_PERIOD_RATES: Final = [
    "customer_churn_rate",
    "customer_churn_rate_stripe30",
    "nrr",
    "grr",
    "gross_mrr_churn_rate",
    "net_mrr_churn_rate",
    "quick_ratio",
]
_SNAPSHOT_MONEY: Final = ["mrr", "arr", "committed_mrr"]
_SNAPSHOT_COUNTS: Final = [
    "all_customers",
    "active_customers",
    "paused_customers",
    "trialing_customers",
    "delinquent_customers",
    "paying_subscriptions",
    "subscriptions_pending_cancellation",
]

_COMMON: Final[dict[str, Any]] = {
    "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
    "mode": {"enum": ["test", "live", None]},
    "subscriptions_by_status": {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0},
    },
}

PERIOD_FIGURES: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "period_start": _WHEN,
        "period_end": _WHEN,
        **_COMMON,
        **dict.fromkeys(_PERIOD_MONEY, _MONEY),
        **dict.fromkeys(_PERIOD_COUNTS, _COUNT),
        **dict.fromkeys(_PERIOD_RATES, _RATE),
    },
    "required": [
        "period_start",
        "period_end",
        *_COMMON,
        *_PERIOD_MONEY,
        *_PERIOD_COUNTS,
        *_PERIOD_RATES,
    ],
}
SNAPSHOT_FIGURES: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "as_of": _WHEN,
        **_COMMON,
        **dict.fromkeys(_SNAPSHOT_MONEY, _MONEY),
        **dict.fromkeys(_SNAPSHOT_COUNTS, _COUNT),
    },
    "required": ["as_of", *_COMMON, *_SNAPSHOT_MONEY, *_SNAPSHOT_COUNTS],
}
MOVEMENT: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string"},
        "effective_at": _WHEN,
        "kind": {"enum": ["new", "expansion", "reactivation", "contraction", "churn"]},
        "subtype": {"type": ["string", "null"]},
        "amount": _MONEY,
        "currency": {"type": "string"},
        "event_ids": _IDS,
    },
    "required": ["customer_id", "effective_at", "kind", "amount", "currency", "event_ids"],
}
MOVEMENTS: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "account": {"type": "string"},
        "period_start": _WHEN,
        "period_end": _WHEN,
        "movements": {"type": "array", "items": {"$ref": "#/components/schemas/Movement"}},
    },
    "required": ["account", "period_start", "period_end", "movements"],
}
CUSTOMER: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "customer_id": {"type": "string"},
        "account": {"type": "string"},
        "mrr_history": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "valid_from": _WHEN,
                    "valid_to": {"type": ["string", "null"], "format": "date-time"},
                    "mrr": _MONEY,
                    "currency": {"type": "string"},
                    "state": {"type": "string"},
                    "event_ids": _IDS,
                },
                "required": ["valid_from", "valid_to", "mrr", "currency", "state", "event_ids"],
            },
        },
        "movements": {"type": "array", "items": {"type": "object"}},
        "subscriptions": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["customer_id", "account", "mrr_history", "movements", "subscriptions"],
}
ERROR: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_ACCOUNT: Final = _param(
    "account",
    "The account (default: `default`).",
    {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
)
_PERIOD: Final = [
    _param(
        "period",
        "2025-01, 2025-Q1, 2025, or last-day|week|month|quarter|year; from 1970 to 9998.",
    ),
    _param("from", "Start, an ISO date or time from 1970-01-01 to 9999-01-01 (with `to`)."),
    _param("to", "End, exclusive."),
]
_BOOL: Final = {"type": "string", "enum": ["true", "false", "1", "0"]}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "A bad parameter.",
        401: "No or wrong credentials.",
        404: "Unknown customer.",
        422: "A figure needs an exchange rate that is missing.",
    }
    return {
        str(code): {
            "description": reasons[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "stripe-ledger read API",
        "version": "1",
        "description": "Figures derived from the append-only ledger of Stripe events. Money "
        "is a decimal string in major units of `currency`; rates are decimal strings.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/metrics": {
            "get": {
                "summary": "The document `stripe-ledger metrics --json` prints.",
                "parameters": [
                    *_PERIOD,
                    _param("as_of", "A snapshot at this instant instead of a period."),
                    _param("by_month", "One document per month (600 at most).", _BOOL),
                    _param("as_reported", "As known at the freeze time, not restated.", _BOOL),
                    _param("frozen_at", "Freeze time for as_reported (default: period end)."),
                    _ACCOUNT,
                ],
                "responses": {
                    "200": {
                        "description": "Period figures, a list of them (by_month), or a "
                        "snapshot (as_of).",
                        **_json(
                            {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/PeriodFigures"},
                                    {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/PeriodFigures"},
                                    },
                                    {"$ref": "#/components/schemas/SnapshotFigures"},
                                ]
                            }
                        ),
                    },
                    **_errors(400, 401, 422),
                },
            }
        },
        "/api/v1/movements": {
            "get": {
                "summary": "MRR movements of a period, each with its Stripe event ids.",
                "parameters": [
                    *_PERIOD,
                    _param("kind", "Comma-separated kinds to keep."),
                    _param("customer", "Only this customer's movements."),
                    _ACCOUNT,
                ],
                "responses": {
                    "200": {
                        "description": "The movements.",
                        **_json({"$ref": "#/components/schemas/Movements"}),
                    },
                    **_errors(400, 401),
                },
            }
        },
        "/api/v1/customers/{customer_id}": {
            "get": {
                "summary": "A customer's MRR history, movements and subscription states.",
                "parameters": [
                    {
                        "name": "customer_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    _ACCOUNT,
                ],
                "responses": {
                    "200": {
                        "description": "The customer's story.",
                        **_json({"$ref": "#/components/schemas/Customer"}),
                    },
                    **_errors(400, 401, 404),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "PeriodFigures": PERIOD_FIGURES,
            "SnapshotFigures": SNAPSHOT_FIGURES,
            "Movement": MOVEMENT,
            "Movements": MOVEMENTS,
            "Customer": CUSTOMER,
            "Error": ERROR,
        },
    },
}
