"""Which business code holds an Amazon merchant account (`amazon_pay_accounts`): claims, their proof, and moving a
business code to another account.

Split from `payments.settings` (the credentials and how they are proven): this is the claim on the account, which
IPNs need because they name only the account. An Amazon merchant account belongs to one business code of one
merchant: a second claim is refused (409 `amazon_merchant_taken` for another merchant, `amazon_merchant_in_use`
for another business code of the same one), never shared. A claim is proven once Amazon showed that the claimant's
credentials act for the account (a delegated token exchanged for it, the keys' payouts naming it, a settlement
report fetched with them, an IPN whose object they read: `mark_proven`); an unproven claim yields to a proven one.
A business code moves to another account only while none of its orders there is open (`check_move`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict, FieldError
from payments.schemas import AmazonPaySettingsIn
from payments.settings_checks import invalid

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["check_move", "claim", "mark_proven", "release"]

log = logging.getLogger("kontor.amazon_pay")
OPEN_ORDERS_NAMED = 5


async def claim(
    conn: Connection | asyncpg.Pool, business: Business, amazon_merchant_id: str, *, proven: bool, dry_run: bool
) -> None:
    """This business code owns the Amazon merchant account from now on; 409 when someone else does. A claim whose
    credentials Amazon has not shown to act for the account (`proven_at` NULL) yields to a proven one. `dry_run`:
    only refuse what would be refused (a claim proven by someone else), store nothing."""
    owner = await conn.fetchrow(
        "SELECT merchant_id, business, proven_at FROM amazon_pay_accounts WHERE amazon_merchant_id = $1"
        + ("" if dry_run else " FOR UPDATE"),
        amazon_merchant_id,
    )
    mine = owner is not None and (owner["merchant_id"], owner["business"]) == (business.merchant_id, business.code)
    takeover = owner is not None and not mine and owner["proven_at"] is None and proven
    if owner is not None and not mine and not takeover and (not dry_run or owner["proven_at"] is not None):
        _refuse_claim(business, amazon_merchant_id, owner)
    if dry_run:
        return
    await conn.execute(
        "INSERT INTO amazon_pay_accounts (amazon_merchant_id, merchant_id, business, proven_at) "
        "VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END) ON CONFLICT (amazon_merchant_id) DO UPDATE "
        "SET merchant_id = excluded.merchant_id, business = excluded.business, claimed_at = now(), "
        "proven_at = COALESCE(excluded.proven_at, amazon_pay_accounts.proven_at)",
        amazon_merchant_id,
        business.merchant_id,
        business.code,
        proven,
    )
    if takeover:
        log.warning(
            "an unproven claim on an Amazon merchant account was taken over by proven credentials",
            extra={"business": business.code},
        )


def _refuse_claim(business: Business, amazon_merchant_id: str, owner: asyncpg.Record) -> None:
    proof = (
        ""
        if owner["proven_at"] is not None
        else " (not proven yet: credentials Amazon shows to act for this account - delegated access, or keys whose "
        "payouts name it - take it over)"
    )
    if owner["merchant_id"] != business.merchant_id:
        raise Conflict(
            "amazon_merchant_taken",
            f"Amazon merchant {amazon_merchant_id} is connected to another Kontor merchant{proof}; an Amazon Pay "
            "account belongs to one merchant (ask Kontor's operator if it is yours)",
            [FieldError("amazon_merchant_id", "connected elsewhere")],
        )
    raise Conflict(
        "amazon_merchant_in_use",
        f"Amazon merchant {amazon_merchant_id} is connected to business code {owner['business']}{proof}; each "
        "business code (legal entity) has its own Amazon Pay account",
        [FieldError("amazon_merchant_id", f"used by business code {owner['business']}")],
    )


async def release(conn: Connection, business: Business, amazon_merchant_id: str) -> None:
    """The business code moved to another account: its claim on this one ends (inside the caller's transaction)."""
    await conn.execute(
        "DELETE FROM amazon_pay_accounts WHERE amazon_merchant_id = $1 AND merchant_id = $2 AND business = $3",
        amazon_merchant_id,
        business.merchant_id,
        business.code,
    )


async def mark_proven(ctx: Kontor, business: Business, amazon_merchant_id: str) -> None:
    """Amazon showed that the business code's credentials act for the account (its settlement report fetched with
    them, an IPN of it whose object they read): the claim is proven."""
    await ctx.pool.execute(
        "UPDATE amazon_pay_accounts SET proven_at = now() WHERE amazon_merchant_id = $1 AND merchant_id = $2 "
        "AND business = $3 AND proven_at IS NULL",
        amazon_merchant_id,
        business.merchant_id,
        business.code,
    )


async def check_move(
    conn: Connection | asyncpg.Pool, business: Business, current: str, spec: AmazonPaySettingsIn
) -> None:
    """Moving a business code to another Amazon account: refused (409) while orders of the current account are
    open, whose captures, refunds and cancellations only that account can carry out; and the new account needs its
    own credentials (a stored key or token acts for the current one: 422 naming `private_key`)."""
    if spec.private_key is None and spec.mws_auth_token is None:
        raise invalid(
            "private_key", f"another Amazon merchant account ({spec.amazon_merchant_id}) needs its own credentials"
        )
    open_orders = await conn.fetch(
        "SELECT o.order_ref FROM orders o WHERE o.merchant_id = $1 AND o.business = $2 AND ("
        "  EXISTS (SELECT 1 FROM order_items i WHERE i.merchant_id = o.merchant_id AND i.business = o.business "
        "    AND i.order_ref = o.order_ref AND i.state = 'open') AND o.status NOT IN ('declined', 'cancelled')"
        "  OR o.status IN ('pending', 'authorization_pending')"
        "  OR EXISTS (SELECT 1 FROM amazon_refunds r WHERE r.merchant_id = o.merchant_id AND r.business = o.business "
        "    AND r.order_ref = o.order_ref AND r.state IN ('Requested', 'RefundInitiated'))"
        "  OR EXISTS (SELECT 1 FROM invoice_captures p WHERE p.merchant_id = o.merchant_id AND p.business = o.business "
        "    AND p.order_ref = o.order_ref AND p.state = 'requested')) ORDER BY o.order_ref LIMIT $3",
        business.merchant_id,
        business.code,
        OPEN_ORDERS_NAMED,
    )
    if open_orders:
        names = ", ".join(r["order_ref"] for r in open_orders)
        raise Conflict(
            "amazon_merchant_change_refused",
            f"business code {business.code} has open orders at Amazon merchant {current} ({names}"
            f"{', ...' if len(open_orders) == OPEN_ORDERS_NAMED else ''}): their captures, refunds and cancellations "
            "can only go through that account; invoice or cancel them first",
            [FieldError("amazon_merchant_id", "open orders at the current account")],
        )
