"""Tamper evidence: link every entry into a per-business SHA-256 chain, and verify the chain.

Why asynchronous: a chain head updated by every posting would serialize all postings of a business
code (the hot-row problem the balance design avoids). Instead `link_pending` runs every second: it
takes the entries of all transactions that have finished (xid below the oldest running transaction,
`pg_snapshot_xmin`), in (xid, entry id) order, and appends them to their business code's chain. An
entry committed late by a slow transaction is linked later; none is skipped, because the watermark
never passes a transaction that is still running.

`verify_chain` recomputes every entry's content hash from its stored lines and every link from its
predecessor, and reports the first broken link: an entry changed or deleted behind the triggers' back
(by a superuser disabling them), an entry inserted behind the chain, or balance slots that no longer
equal the sum of the lines.

Its plans do not depend on the tables' statistics, which lag behind a journal that grew fast (autovacuum
late or off): with the statistics of empty tables the planner ran the counts as nested-loop anti joins,
O(n^2), and verify timed out at 30,000 entries. So the walk looks every linked entry up by its key (a LATERAL
lookup, no sequential scans: O(n log n)), and the set-wide counts join by hashing or merging (no nested loops),
whatever the statistics say.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import asyncpg

from ledger import metrics
from ledger.domain import Business, EntryDraft, HashedLine, link_sha256, stored_content_sha256
from ledger.errors import present
from ledger.schemas import BrokenLink, VerifyOut

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["GENESIS", "link_pending", "verify_chain"]

GENESIS = bytes(32)
LINK_BATCH_MAX = 20_000
VERIFY_BATCH_MAX = 5_000
_EPOCH_US = "(extract(epoch FROM e.recorded_at) * 1000000)::bigint"


async def link_pending(pool: asyncpg.Pool, *, batch_max: int = LINK_BATCH_MAX) -> int:
    """Link entries of finished transactions into their chains; returns how many were linked.

    Several instances may call this at once: the watermark row is taken with SKIP LOCKED, so one
    links and the others return 0 immediately.
    """
    async with pool.acquire() as conn, conn.transaction():
        mark = await conn.fetchrow("SELECT xid_done, entry_done FROM chain_watermark FOR UPDATE SKIP LOCKED")
        if mark is None:
            return 0
        horizon = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
        rows = await conn.fetch(
            f"SELECT e.merchant_id, e.business, e.entry_id, e.xid, {_EPOCH_US} AS recorded_us, e.content_sha256 "
            "FROM entries e WHERE (e.xid, e.entry_id) > ($1::xid8, $2) AND e.xid < $3::xid8 "
            "ORDER BY e.xid, e.entry_id LIMIT $4",
            mark["xid_done"],
            mark["entry_done"],
            horizon,
            batch_max,
        )
        if not rows:
            return 0
        by_business: dict[tuple[int, int], list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_business[(r["merchant_id"], r["business"])].append(r)
        links: list[tuple[int, int, int, int, bytes]] = []
        for (merchant_id, business), entries in sorted(by_business.items()):
            head = await conn.fetchrow(
                "INSERT INTO chain_heads AS h (merchant_id, business, seq, link_sha256) VALUES ($1, $2, 0, $3) "
                "ON CONFLICT (merchant_id, business) DO UPDATE SET seq = h.seq RETURNING seq, link_sha256",
                merchant_id,
                business,
                GENESIS,
            )
            head = present(head, "INSERT ... ON CONFLICT DO UPDATE ... RETURNING gives the head row")
            seq, previous = head["seq"], head["link_sha256"]
            for r in entries:
                seq += 1
                previous = link_sha256(previous, r["entry_id"], r["recorded_us"], r["content_sha256"])
                links.append((merchant_id, business, seq, r["entry_id"], previous))
            await conn.execute(
                "UPDATE chain_heads SET seq = $3, link_sha256 = $4 WHERE merchant_id = $1 AND business = $2",
                merchant_id,
                business,
                seq,
                previous,
            )
        await conn.copy_records_to_table(
            "chain_links", records=links, columns=["merchant_id", "business", "seq", "entry_id", "link_sha256"]
        )
        last = rows[-1]
        await conn.execute(
            "UPDATE chain_watermark SET xid_done = $1::xid8, entry_done = $2", last["xid"], last["entry_id"]
        )
    metrics.CHAIN_LINKED.inc(len(rows))
    return len(rows)


async def verify_chain(pool: asyncpg.Pool, business: Business) -> VerifyOut:
    """Walk the business code's chain from the start; report the first link that does not hold."""
    key = (business.merchant_id, business.code)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval("SELECT count(*) FROM entries WHERE merchant_id = $1 AND business = $2", *key)
        await conn.execute("SET LOCAL enable_seqscan = off")  # the walk: key lookups, batch by batch
        broken, chained = await _walk(conn, business)
        await conn.execute("SET LOCAL enable_seqscan = on; SET LOCAL enable_nestloop = off")  # counts: hash joins
        unchained = await conn.fetchval(
            "SELECT count(*) FROM entries e WHERE e.merchant_id = $1 AND e.business = $2 AND NOT EXISTS "
            "(SELECT 1 FROM chain_links c WHERE c.merchant_id = e.merchant_id AND c.business = e.business "
            "AND c.entry_id = e.entry_id)",
            *key,
        )
        if broken is None:
            behind = await conn.fetchval(
                "SELECT e.entry_id FROM entries e, chain_watermark w WHERE e.merchant_id = $1 AND e.business = $2 "
                "AND (e.xid, e.entry_id) <= (w.xid_done, w.entry_done) AND NOT EXISTS (SELECT 1 FROM chain_links c "
                "WHERE c.merchant_id = e.merchant_id AND c.business = e.business AND c.entry_id = e.entry_id) "
                "ORDER BY e.entry_id LIMIT 1",
                *key,
            )
            if behind is not None:
                broken = BrokenLink(seq=None, entry_id=behind, reason="entry is missing from the chain")
        totals_ok = await _totals_match_lines(conn, business)
    return VerifyOut(
        business=business.code,
        ok=broken is None and totals_ok,
        entries=total,
        chained=chained,
        unchained=unchained,
        balances_match_lines=totals_ok,
        first_broken=broken,
    )


async def _walk(conn: Connection, business: Business) -> tuple[BrokenLink | None, int]:
    previous, seq = GENESIS, 0
    while True:
        rows = await conn.fetch(
            f"SELECT c.seq, c.entry_id, c.link_sha256, e.entry_id IS NOT NULL AS present, {_EPOCH_US} AS recorded_us, "
            "e.effective_date, e.description, e.reference, e.metadata, e.reverses, e.order_reference, e.content_sha256 "
            # one key lookup per link (LATERAL; LIMIT keeps the planner from turning it into a join, which with
            # stale statistics scanned every entry for every link)
            "FROM chain_links c LEFT JOIN LATERAL (SELECT * FROM entries x WHERE x.merchant_id = c.merchant_id "
            "AND x.business = c.business AND x.entry_id = c.entry_id LIMIT 1) e ON true "
            "WHERE c.merchant_id = $1 AND c.business = $2 AND c.seq > $3 ORDER BY c.seq LIMIT $4",
            business.merchant_id,
            business.code,
            seq,
            VERIFY_BATCH_MAX,
        )
        if not rows:
            return None, seq
        lines = await _lines_of(conn, business, [r["entry_id"] for r in rows])
        for r in rows:
            if r["seq"] != seq + 1:
                return BrokenLink(seq=seq + 1, entry_id=None, reason="a link of the chain is missing"), seq
            broken = _check_link(business, r, lines.get(r["entry_id"], []), previous)
            if broken is not None:
                return broken, seq
            previous, seq = r["link_sha256"], r["seq"]


def _check_link(business: Business, r: asyncpg.Record, lines: list[HashedLine], previous: bytes) -> BrokenLink | None:
    def broken(reason: str) -> BrokenLink:
        return BrokenLink(seq=r["seq"], entry_id=r["entry_id"], reason=reason)

    if not r["present"]:
        return broken("the linked entry has been deleted")
    draft = EntryDraft(
        effective_date=r["effective_date"],
        description=r["description"],
        lines=(),
        reference=r["reference"],
        metadata=r["metadata"],
        reverses=r["reverses"],
        order_reference=r["order_reference"],
    )
    if stored_content_sha256(business.merchant_id, business.code, draft, lines) != r["content_sha256"]:
        return broken("the entry or its lines were changed after posting")
    if link_sha256(previous, r["entry_id"], r["recorded_us"], r["content_sha256"]) != r["link_sha256"]:
        return broken("the link does not follow from its predecessor")
    return None


async def _lines_of(conn: Connection, business: Business, entry_ids: list[int]) -> dict[int, list[HashedLine]]:
    rows = await conn.fetch(
        "SELECT entry_id, account_id, customer, side, amount_minor, currency FROM lines "
        "WHERE merchant_id = $1 AND business = $2 AND entry_id = ANY($3::bigint[]) ORDER BY entry_id, line_no",
        business.merchant_id,
        business.code,
        entry_ids,
    )
    out: dict[int, list[HashedLine]] = defaultdict(list)
    for r in rows:
        out[r["entry_id"]].append((r["account_id"], r["customer"], r["side"], r["amount_minor"], r["currency"]))
    return out


async def _totals_match_lines(conn: Connection, business: Business) -> bool:
    mismatch = await conn.fetchval(
        "SELECT count(*) FROM (SELECT account_id, currency, day, sum(debit_minor) AS d, sum(credit_minor) AS c "
        "  FROM balance_totals WHERE merchant_id = $1 AND business = $2 GROUP BY 1, 2, 3) t "
        "FULL JOIN (SELECT account_id, currency, effective_date AS day, "
        "  COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) AS d, "
        "  COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0) AS c "
        "  FROM lines WHERE merchant_id = $1 AND business = $2 GROUP BY 1, 2, 3) l "
        "USING (account_id, currency, day) WHERE t.d IS DISTINCT FROM l.d OR t.c IS DISTINCT FROM l.c",
        business.merchant_id,
        business.code,
    )
    if mismatch:
        return False
    # the accounts' whole-history totals (the account bound and the overdraft guard read them) equal the lines too
    account_mismatch = await conn.fetchval(
        "SELECT count(*) FROM (SELECT account_id, currency, sum(debit_minor) AS d, sum(credit_minor) AS c "
        "  FROM account_totals WHERE merchant_id = $1 AND business = $2 GROUP BY 1, 2) t "
        "FULL JOIN (SELECT account_id, currency, "
        "  COALESCE(sum(amount_minor) FILTER (WHERE side = 'D'), 0) AS d, "
        "  COALESCE(sum(amount_minor) FILTER (WHERE side = 'C'), 0) AS c "
        "  FROM lines WHERE merchant_id = $1 AND business = $2 GROUP BY 1, 2) l "
        "USING (account_id, currency) WHERE t.d IS DISTINCT FROM l.d OR t.c IS DISTINCT FROM l.c",
        business.merchant_id,
        business.code,
    )
    return bool(account_mismatch == 0)
