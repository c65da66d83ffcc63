"""R8: a corpus of bad requests. Each gets a clear 4xx problem+json that names the field, and changes nothing.

"Nothing" is checked over every table that holds a merchant's data (rows counted before and after the whole
corpus). Malformed settlement CSV and CAMT XML, forged and replayed IPNs have their own tests with the
files they need (test_reconciliation.py, test_ipn.py); this corpus covers the JSON API and the HTTP layer.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import OPERATOR_KEY, Tenant

MERCHANT_TABLES = [
    "entries", "lines", "balance_totals", "idempotency_keys", "period_closes", "accounts", "api_keys", "businesses",
    "orders", "order_items", "order_documents", "amazon_pay_settings", "outbox", "disputes", "settlements",
    "reconciliation_exceptions", "notification_callbacks", "dunning_policies", "dunning_accounts",
]  # fmt: skip


def entry(*lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"effective_date": "2026-11-20", "description": "bad input", "lines": list(lines), **extra}


DR = {"account": "1200", "debit": "10.00"}
CR = {"account": "8400", "credit": "10.00"}

# (id, method, path under the business code or absolute, body (json) or bytes, status, code, field or None)
CORPUS: list[tuple[str, str, str, Any, int, str, str | None]] = [
    ("too many decimals", "POST", "/entries", entry({**DR, "debit": "10.001"}, CR), 422, "entry_invalid",
     "lines[0].debit"),
    ("JPY has none", "POST", "/entries", entry({**DR, "debit": "1.5", "currency": "JPY"}, {**CR, "credit": "1.5",
     "currency": "JPY"}), 422, "entry_invalid", "lines[0].debit"),
    ("NaN", "POST", "/entries", entry({**DR, "debit": "NaN"}, CR), 400, "request_invalid", "lines[0].debit"),
    ("Infinity", "POST", "/entries", entry({**DR, "debit": "Infinity"}, CR), 400, "request_invalid",
     "lines[0].debit"),
    ("exponent", "POST", "/entries", entry({**DR, "debit": "1e3"}, CR), 400, "request_invalid", "lines[0].debit"),
    ("negative", "POST", "/entries", entry({**DR, "debit": "-10.00"}, CR), 400, "request_invalid",
     "lines[0].debit"),
    ("number, not string", "POST", "/entries", entry({**DR, "debit": 10.0}, CR), 400, "request_invalid",
     "lines[0].debit"),
    ("JSON NaN literal", "POST", "/entries", b'{"effective_date": "2026-11-20", "description": "x", "lines": NaN}',
     400, "bad_request", None),
    ("zero", "POST", "/entries", entry({**DR, "debit": "0.00"}, {**CR, "credit": "0.00"}), 422, "entry_invalid",
     "lines[0].debit"),
    ("above the maximum", "POST", "/entries", entry({**DR, "debit": "99999999999999999.00"}, CR), 400,
     "request_invalid", "lines[0].debit"),
    ("unbalanced", "POST", "/entries", entry(DR, {**CR, "credit": "9.99"}), 422, "entry_unbalanced", None),
    ("debit and credit on one line", "POST", "/entries", entry({**DR, "credit": "10.00"}, CR), 422,
     "entry_invalid", "lines[0]"),
    ("one line", "POST", "/entries", entry(DR), 400, "request_invalid", "lines"),
    ("unknown account", "POST", "/entries", entry({**DR, "account": "0000"}, CR), 422, "entry_invalid",
     "lines[0].account"),
    ("unknown field", "POST", "/entries", entry(DR, CR, colour="red"), 400, "request_invalid", "colour"),
    ("unknown line field", "POST", "/entries", entry({**DR, "vat": "1"}, CR), 400, "request_invalid",
     "lines[0].vat"),
    ("invalid date", "POST", "/entries", {**entry(DR, CR), "effective_date": "2026-02-30"}, 400, "request_invalid",
     "effective_date"),
    ("NUL in text", "POST", "/entries", entry(DR, CR, description="a\u0000b"), 422, "text_invalid", None),
    ("not JSON", "POST", "/entries", b"effective_date=2026-11-20", 400, "bad_request", None),
    ("empty body", "POST", "/entries", b"", 400, "request_invalid", None),
    ("batch with one bad entry", "POST", "/entries/batch", {"entries": [entry(DR, CR), entry({**DR, "debit": "x"},
     CR)]}, 400, "request_invalid", "entries[1].lines[0].debit"),
    ("unknown query parameter", "GET", "/accounts/1200/balance?asof=2026-01-01", None, 400,
     "query_parameter_unknown", "asof"),
    ("bad query value", "GET", "/accounts/1200/balance?as_of=yesterday", None, 400, "request_invalid", "as_of"),
    ("page size too large", "GET", "/entries?limit=100000", None, 400, "request_invalid", "limit"),
    ("id beyond bigint", "GET", "/entries/99999999999999999999999", None, 400, "request_invalid", "entry_id"),
    ("bad cursor", "GET", "/entries?cursor=not-a-cursor", None, 400, "cursor_invalid", None),
    ("account: unknown type", "POST", "/accounts", {"number": "1999", "name": "x", "type": "cash"}, 400,
     "request_invalid", "type"),
    ("API key: unknown role", "POST", "/v1/api-keys", {"name": "x", "role": "root"}, 400, "request_invalid", "role"),
    ("order: zero payment", "POST", "/customers/C-1/orders/O-1/payments",
     {"amount": "0.00", "payment_date": "2026-11-20", "payment_reference": "P-1"}, 422, "amount_invalid", "amount"),
    ("dunning policy: five levels", "PUT", "/dunning/policy", {"levels": [{"days": 1}] * 5}, 400, "request_invalid",
     "levels"),
    ("base rate out of range", "PUT", "/v1/base-rates/2030-01-01", {"rate": "-77"}, 422, "base_rate_invalid",
     "rate"),
    ("webhook: plain-text secret in URL", "POST", "/v1/notification-callbacks",
     {"url": "https://user:pw@example.com/hook", "types": ["balance.updated"]}, 422, "invalid_callback_url", None),
]  # fmt: skip


async def counts(pool: asyncpg.Pool, merchant_id: int) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t} WHERE merchant_id = $1" for t in MERCHANT_TABLES)
    return {r[0]: r[1] for r in await pool.fetch(sql, merchant_id)}


@pytest.fixture
async def before(pool: asyncpg.Pool, tenant: Tenant) -> dict[str, int]:
    return await counts(pool, tenant.merchant_id)


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status", "code", "field"), CORPUS, ids=[c[0] for c in CORPUS]
)
async def test_bad_requests_are_refused_clearly_and_change_nothing(
    pool: asyncpg.Pool,
    tenant: Tenant,
    before: dict[str, int],
    name: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    url = path if path.startswith("/v1/") else tenant.url(path)
    headers = tenant.headers(OPERATOR_KEY if "base-rates" in path else None, idem=str(uuid.uuid4()))
    if isinstance(body, bytes):
        r = await tenant.client.request(
            method, url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        r = await tenant.client.request(method, url, json=body, headers=headers)
    assert r.status_code == status, (name, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == code, (name, problem)
    assert all(problem[k] for k in ("detail", "title", "request_id")), problem
    if field is not None:
        assert field in [e["field"] for e in problem.get("errors", [])], (name, problem)
    assert await counts(pool, tenant.merchant_id) == before
