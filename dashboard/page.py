"""The dashboard at `/`: one account's months as charts and tables, rendered on the server.

Every figure comes from the same metrics document as `stripe-ledger metrics --json`;
clicking a month's movement bar lists the movements behind it, with customers and Stripe
event ids; every table downloads as CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any, Final
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dashboard import charts
from dashboard.auth import Refused, refusal
from dashboard.csv_export import csv_response
from dashboard.params import BadParameter, account_of
from dashboard.quarantine_notice import quarantine_notice
from ledger.accounts import all_accounts
from projections.fx import MissingRate
from projections.money import major_units
from projections.periods import PeriodError, add_months, check_range, month_start, parse_month
from projections.queries import MovementRow, movements_between
from projections.reports import metric_documents

SHOWN_MONTHS: Final = 12
# (heading, key in the metrics document, how to show it)
TABLES: Final[dict[str, tuple[str, list[tuple[str, str, str]]]]] = {
    "mrr": ("MRR and ARR", [("MRR", "mrr_end", "money"), ("ARR", "arr_end", "money")]),
    "movements": (
        "MRR movements",
        [
            ("new", "new", "money"),
            ("expansion", "expansion", "money"),
            ("reactivation", "reactivation", "money"),
            ("contraction", "contraction", "money"),
            ("churn", "churn", "money"),
            ("net new", "net_new_mrr", "money"),
        ],
    ),
    "customers": (
        "Customers",
        [
            ("active", "active_customers", "count"),
            ("new", "new_customers", "count"),
            ("churned", "churned_customers", "count"),
        ],
    ),
    "retention": (
        "Churn and retention",
        [
            ("customer churn", "customer_churn_rate", "rate"),
            ("NRR", "nrr", "rate"),
            ("GRR", "grr", "rate"),
        ],
    ),
    "revenue": (
        "Revenue",
        [
            ("gross", "gross_revenue", "money"),
            ("refunds", "refunds", "money"),
            ("fees", "fees", "money"),
            ("net", "net_revenue", "money"),
        ],
    ),
}
# The CSV columns holding numbers; every other column is text (see csv_export).
_NUMERIC_COLUMNS: Final = {"amount"} | {key for _, cols in TABLES.values() for _, key, _ in cols}
_SYMBOLS: Final = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}


@dataclass(frozen=True, slots=True)
class View:
    account: str
    first: datetime  # first month shown
    count: int
    reported: bool
    month: datetime | None  # the month whose movements are listed

    @property
    def months(self) -> list[datetime]:
        return [add_months(self.first, n) for n in range(self.count)]

    def query(self, **changes: str | None) -> str:
        """This view's query string with `changes` (None removes a parameter)."""
        params = {
            "account": self.account,
            "from": self.first.strftime("%Y-%m"),
            "to": add_months(self.first, self.count - 1).strftime("%Y-%m"),
        }
        if self.reported:
            params["as_reported"] = "1"
        if self.month is not None:
            params["month"] = self.month.strftime("%Y-%m")
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return urlencode(params)


def view_of(request: Request, now: datetime) -> View:
    """The view a query names; raises BadParameter or PeriodError saying what is wrong."""
    q = request.query_params
    last = add_months(month_start(now), -1)
    end = parse_month(q["to"], "to") if "to" in q else last
    first = parse_month(q["from"], "from") if "from" in q else add_months(end, 1 - SHOWN_MONTHS)
    count = (end.year - first.year) * 12 + end.month - first.month + 1
    if not 1 <= count <= 60:
        raise BadParameter("show between 1 and 60 months (from <= to)")
    check_range(first, add_months(end, 1))  # a default `from` may precede the calendar
    month = parse_month(q["month"], "month") if q.get("month") else None
    account = account_of(q)
    return View(account, first, count, q.get("as_reported") in ("1", "true"), month)


async def _documents(request: Request, view: View) -> list[dict[str, Any]]:
    runtime = request.app.state.runtime
    return await metric_documents(
        runtime.engine,
        runtime.settings,
        view.account,
        ranges=[(m, add_months(m, 1)) for m in view.months],
        reported=view.reported,
    )


def _cell(value: Any, style: str, currency: str) -> str:
    if value is None:
        return "—"
    if style == "money":
        return money(value, currency)
    if style == "rate":
        return f"{Decimal(value) * 100:.1f}%"
    return str(value)


def money(value: str, currency: str) -> str:
    """A decimal string in the currency's own notation: "$1,234.56", "€-30.00"."""
    amount = Decimal(value)
    exponent = amount.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    text = f"{abs(amount):,.{places}f}"
    symbol = _SYMBOLS.get(currency.lower())
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def _table(name: str, view: View, docs: list[dict[str, Any]], currency: str) -> str:
    heading, columns = TABLES[name]
    head = "".join(f"<th>{escape(label)}</th>" for label, _, _ in columns)
    rows = "".join(
        f"<tr><td>{doc['period_start'][:7]}</td>"
        + "".join(
            f'<td class="num" data-key="{key}">{escape(_cell(doc.get(key), style, currency))}</td>'
            for _, key, style in columns
        )
        + "</tr>"
        for doc in docs
    )
    return (
        f'<section id="{name}"><h2>{escape(heading)}</h2>{{chart}}'
        f'<table class="figures" data-table="{name}"><thead><tr><th>month</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        f'<a class="csv" href="/dashboard.csv?{escape(view.query(table=name))}">CSV</a></section>'
    )


def _decimals(docs: list[dict[str, Any]], key: str, sign: int = 1) -> list[Decimal | None]:
    return [None if d.get(key) is None else sign * Decimal(str(d[key])) for d in docs]


def _charts(view: View, docs: list[dict[str, Any]]) -> dict[str, str]:
    labels = [d["period_start"][:7] for d in docs]
    s = charts.Series
    movement_series = [
        s(kind, _decimals(docs, kind, -1 if kind in ("contraction", "churn") else 1), colour)
        for kind, colour in charts.COLOURS.items()
    ]
    links = [f"/?{view.query(month=label)}#month-movements" for label in labels]
    rates = [
        s(label, [None if v is None else v * 100 for v in _decimals(docs, key)], colour)
        for (label, key, _), colour in zip(TABLES["retention"][1], charts.PALETTE, strict=False)
    ]
    return {
        "mrr": charts.lines(
            labels, [s("MRR", _decimals(docs, "mrr_end"), charts.PALETTE[0])], "MRR"
        )
        + charts.lines(labels, [s("ARR", _decimals(docs, "arr_end"), charts.PALETTE[1])], "ARR"),
        "movements": charts.bars(
            labels, movement_series, "MRR movements", stacked=True, links=links
        )
        + charts.legend(movement_series),
        "customers": _side_by_side(labels, docs, "customers", "Customers"),
        "retention": charts.lines(labels, rates, "Churn and retention (%)") + charts.legend(rates),
        "revenue": _side_by_side(labels, docs, "revenue", "Revenue"),
    }


def _side_by_side(labels: list[str], docs: list[dict[str, Any]], table: str, title: str) -> str:
    series = [
        charts.Series(label, _decimals(docs, key), colour)
        for (label, key, _), colour in zip(TABLES[table][1], charts.PALETTE, strict=False)
    ]
    return charts.bars(labels, series, title, stacked=False) + charts.legend(series)


def _movements_section(rows: list[MovementRow], month: datetime) -> str:
    body = "".join(
        f"<tr><td>{m.effective_at.date()}</td><td>{escape(m.customer_id)}</td>"
        f"<td>{escape(m.kind)}</td><td>{escape(m.subtype or '')}</td>"
        f'<td class="num">{escape(money(_major(m), m.currency))}</td>'
        f"<td>{escape(', '.join(m.event_ids))}</td></tr>"
        for m in rows
    )
    return (
        f'<section id="month-movements"><h2>Movements in {month:%Y-%m}</h2>'
        '<table class="figures" data-table="month_movements"><thead><tr><th>date</th>'
        "<th>customer</th><th>kind</th><th>subtype</th><th>amount</th><th>Stripe events</th>"
        f"</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _major(movement: MovementRow) -> str:
    return major_units(movement.amount, movement.currency)


_STYLE: Final = """
body{font:14px system-ui,sans-serif;margin:0 auto;max-width:1180px;padding:16px;color:#222}
header{display:flex;gap:16px;align-items:center;flex-wrap:wrap}
.badge{background:#ef6c00;color:#fff;padding:2px 8px;border-radius:4px;font-weight:600}
.chart{width:100%;height:auto;margin:4px 0}
.title{font-size:13px;font-weight:600;fill:#333}.axis{stroke:#999}.tick{font-size:11px;fill:#555}
table.figures{border-collapse:collapse;width:100%;margin:4px 0}
table.figures td,table.figures th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.legend span{margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px}
a.csv{font-size:12px}section{margin:24px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:8px}
.charts .legend{grid-column:1/-1;margin:0}h2{margin:8px 0;font-size:17px}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(message: str = "") -> str:
    note = f'<p role="alert">{escape(message)}</p>' if message else ""
    return _page(
        "stripe-ledger: sign in",
        "<h1>stripe-ledger</h1>"
        f"{note}<form method=post action=/login><label>Dashboard token "
        "<input type=password name=token autocomplete=current-password></label> "
        "<button type=submit>Sign in</button></form>",
    )


def refused_page(refused: Refused) -> HTMLResponse:
    """The login form, saying why unless it is only that no one has signed in."""
    message = "" if refused.status == 401 else refused.reason
    return HTMLResponse(login_page(message), refused.status, headers=refused.headers())


async def dashboard(request: Request) -> Response:
    runtime = request.app.state.runtime
    if refused := await refusal(request):
        return refused_page(refused)
    try:
        view = view_of(request, datetime.now(UTC))
        docs = await _documents(request, view)
    except (BadParameter, PeriodError) as exc:
        return HTMLResponse(_page("stripe-ledger", f"<p role=alert>{escape(str(exc))}</p>"), 400)
    except MissingRate as exc:
        return HTMLResponse(_page("stripe-ledger", f"<p role=alert>{escape(str(exc))}</p>"), 422)
    currency = docs[0]["currency"] if docs else "usd"
    accounts = sorted(await all_accounts(runtime.engine, runtime.settings))
    options = "".join(
        f"<option{' selected' if a == view.account else ''}>{escape(a)}</option>"
        for a in sorted({*accounts, view.account})
    )
    test_mode = any(d.get("mode") == "test" for d in docs)
    switch = view.query(as_reported=None if view.reported else "1")
    header = (
        "<header><h1>stripe-ledger</h1>"
        f'<form method=get action="/"><select name=account>'
        f"{options}</select>"
        f'<input type=month name=from value="{view.first:%Y-%m}">'
        f'<input type=month name=to value="{add_months(view.first, view.count - 1):%Y-%m}">'
        "<button>Show</button></form>"
        + ('<span class="badge" id="test-mode">TEST MODE</span>' if test_mode else "")
        + f'<a id="reported-switch" href="/?{escape(switch)}">'
        + ("show restated" if view.reported else "show as reported")
        + "</a>"
        + f"<span>{'as reported' if view.reported else 'restated'}, {currency.upper()}</span>"
        "<form method=post action=/logout><button>Sign out</button></form></header>"
    )
    drawn = _charts(view, docs)
    sections = [
        _table(name, view, docs, currency).replace(
            "{chart}", f'<div class="charts">{drawn[name]}</div>', 1
        )
        for name in TABLES
    ]
    if view.month is not None:
        async with runtime.engine.connect() as conn:
            rows = await movements_between(
                conn, view.account, view.month, add_months(view.month, 1)
            )
        sections.insert(2, _movements_section(rows, view.month))
    notice = await quarantine_notice(runtime.engine, view.account)
    return HTMLResponse(
        _page(f"stripe-ledger: {view.account}", header + notice + "".join(sections))
    )


async def download(request: Request) -> Response:
    runtime = request.app.state.runtime
    if refused := await refusal(request):
        return Response(
            f"{refused.reason}\n", refused.status, refused.headers(), media_type="text/plain"
        )
    name = request.query_params.get("table", "")
    try:
        view = view_of(request, datetime.now(UTC))
        if name == "month_movements":
            if view.month is None:
                raise BadParameter("month_movements needs month=YYYY-MM")
            async with runtime.engine.connect() as conn:
                rows = await movements_between(
                    conn, view.account, view.month, add_months(view.month, 1)
                )
            header = [
                "effective_at",
                "customer_id",
                "kind",
                "subtype",
                "amount",
                "currency",
                "event_ids",
            ]
            lines = [
                [
                    m.effective_at.isoformat(),
                    m.customer_id,
                    m.kind,
                    m.subtype or "",
                    _major(m),
                    m.currency,
                    " ".join(m.event_ids),
                ]
                for m in rows
            ]
        elif name in TABLES:
            docs = await _documents(request, view)
            columns = TABLES[name][1]
            header = ["month", *(key for _, key, _ in columns), "currency"]
            lines = [
                [d["period_start"][:7], *(_figure(d, key) for _, key, _ in columns), d["currency"]]
                for d in docs
            ]
        else:
            raise BadParameter(f"table must be one of {', '.join([*TABLES, 'month_movements'])}")
    except (BadParameter, PeriodError) as exc:
        return Response(f"{exc}\n", status_code=400, media_type="text/plain")
    except MissingRate as exc:
        return Response(f"{exc}\n", status_code=422, media_type="text/plain")
    filename = f"{view.account}-{name}-{view.first:%Y-%m}.csv"
    return csv_response(header, lines, filename, numeric=_NUMERIC_COLUMNS)


def _figure(document: dict[str, Any], key: str) -> Any:
    value = document.get(key)
    return "" if value is None else value  # a count of 0 is a figure, not a blank
