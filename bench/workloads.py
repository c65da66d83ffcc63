"""What the benchmarks post and read: entry bodies, and the raw-SQL baseline that posts the same entries.

The baseline is the fastest honest ledger posting PostgreSQL allows from Python: one statement per
entry through asyncpg (no HTTP, no validation, synchronous commit on) that inserts the entry and its
lines and updates one balance row per account, rows locked in account order. It is the design the
service must beat on hot accounts (one row per account queues every posting) and come close to on
cold ones (README, Performance: the baselines measured beside each figure).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

__all__ = [
    "BASELINE_BATCH_SQL",
    "BASELINE_DDL",
    "BASELINE_POST_SQL",
    "P1_SHAPE",
    "P2_SHAPE",
    "OrderShape",
    "baseline_args",
    "batch_body",
    "entry_body",
]


@dataclass(frozen=True)
class OrderShape:
    """A 4-line order entry: gross on `first_account` (AR with a customer, or PSP), revenue 19 %, VAT, revenue 0 %."""

    first_account: str
    with_customer: bool


P1_SHAPE = OrderShape(first_account="1400", with_customer=True)  # AR(customer) / REV / VAT / REV 0 %
P2_SHAPE = OrderShape(first_account="1210", with_customer=False)  # PSP / REV / VAT / REV 0 %: all four are hot


def _lines(shape: OrderShape, rng: random.Random) -> list[dict[str, str]]:
    net = rng.randrange(1_00, 500_00)
    vat = (net * 19 + 50) // 100
    shipping = rng.choice((0, 4_90, 9_90)) or 1_00
    gross = net + vat + shipping
    first: dict[str, str] = {"account": shape.first_account, "debit": _fmt(gross)}
    if shape.with_customer:
        first["customer"] = f"C-{rng.randrange(100_000)}"
    return [
        first,
        {"account": "8400", "credit": _fmt(net)},
        {"account": "1776", "credit": _fmt(vat)},
        {"account": "8120", "credit": _fmt(shipping)},
    ]


def _fmt(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def entry_body(shape: OrderShape, rng: random.Random, n: int, day: str = "2026-11-20") -> dict[str, object]:
    return {"effective_date": day, "description": f"Order {n}", "reference": f"order-{n}", "lines": _lines(shape, rng)}


def batch_body(shape: OrderShape, rng: random.Random, first: int, size: int, days: list[str]) -> bytes:
    entries = [entry_body(shape, rng, first + i, days[(first + i) % len(days)]) for i in range(size)]
    return json.dumps({"entries": entries}, separators=(",", ":")).encode()


# --- raw SQL baseline ---------------------------------------------------------------------------------
BASELINE_DDL = """
DROP TABLE IF EXISTS bench_lines, bench_entries, bench_balances;
CREATE TABLE bench_entries (id bigserial PRIMARY KEY, merchant bigint NOT NULL, effective_date date NOT NULL,
                            description text NOT NULL, reference text);
CREATE TABLE bench_lines (entry_id bigint NOT NULL REFERENCES bench_entries, line_no smallint NOT NULL,
                          account bigint NOT NULL, customer text, side char(1) NOT NULL, amount bigint NOT NULL,
                          PRIMARY KEY (entry_id, line_no));
CREATE TABLE bench_balances (account bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
"""

BASELINE_POST_SQL = """
WITH e AS (
    INSERT INTO bench_entries (merchant, effective_date, description, reference)
    VALUES ($1, $2::text::date, $3, $4) RETURNING id),
l AS (
    INSERT INTO bench_lines (entry_id, line_no, account, customer, side, amount)
    SELECT e.id, x.no, x.account, x.customer, x.side, x.amount
      FROM e, unnest($5::smallint[], $6::bigint[], $7::text[], $8::text[], $9::bigint[])
           AS x(no, account, customer, side, amount)
    RETURNING account, side, amount),
locked AS (SELECT account FROM bench_balances WHERE account = ANY($6::bigint[]) ORDER BY account FOR UPDATE),
u AS (
    UPDATE bench_balances b SET balance = b.balance + d.delta
      FROM (SELECT account, sum(CASE side WHEN 'D' THEN amount ELSE -amount END) AS delta FROM l GROUP BY account) d
     WHERE b.account = d.account AND b.account IN (SELECT account FROM locked)
    RETURNING 1)
SELECT (SELECT id FROM e), (SELECT count(*) FROM u)
"""

# the bulk baseline: one statement per batch of entries (entry index i in 1..n for every line)
BASELINE_BATCH_SQL = """
WITH e AS (
    INSERT INTO bench_entries (merchant, effective_date, description, reference)
    SELECT $1, d::text::date, t, r FROM unnest($2::text[], $3::text[], $4::text[]) AS x(d, t, r)
    RETURNING id),
ids AS (SELECT id, row_number() OVER (ORDER BY id) AS i FROM e),
l AS (
    INSERT INTO bench_lines (entry_id, line_no, account, customer, side, amount)
    SELECT ids.id, x.no, x.account, x.customer, x.side, x.amount
      FROM unnest($5::int[], $6::smallint[], $7::bigint[], $8::text[], $9::text[], $10::bigint[])
           AS x(i, no, account, customer, side, amount) JOIN ids ON ids.i = x.i
    RETURNING account, side, amount),
locked AS (SELECT account FROM bench_balances WHERE account = ANY($7::bigint[]) ORDER BY account FOR UPDATE),
u AS (
    UPDATE bench_balances b SET balance = b.balance + d.delta
      FROM (SELECT account, sum(CASE side WHEN 'D' THEN amount ELSE -amount END) AS delta FROM l GROUP BY account) d
     WHERE b.account = d.account AND b.account IN (SELECT account FROM locked)
    RETURNING 1)
SELECT count(*) FROM u
"""

_BASELINE_ACCOUNTS = {"1400": 1, "1210": 2, "8400": 3, "1776": 4, "8120": 5}


def baseline_args(merchant: int, body: dict[str, object]) -> tuple[object, ...]:
    """The baseline statement's parameters for the same entry the service is sent."""
    lines = body["lines"]
    assert isinstance(lines, list)
    accounts = [merchant * 10 + _BASELINE_ACCOUNTS[ln["account"]] for ln in lines]
    return (
        merchant,
        body["effective_date"],
        body["description"],
        body["reference"],
        list(range(1, len(lines) + 1)),
        accounts,
        [ln.get("customer") for ln in lines],
        ["D" if "debit" in ln else "C" for ln in lines],
        [int(ln.get("debit", ln.get("credit")).replace(".", "")) for ln in lines],
    )


def baseline_accounts(merchants: range) -> list[int]:
    return [m * 10 + a for m in merchants for a in _BASELINE_ACCOUNTS.values()]
