"""What the generic reversal (`POST .../entries/{id}/reversal`) may not take back: dunning's own bookings.

A notice's fees and interest, a write-off (with its VAT correction) and a recovery are kept in dunning's tables
beside the journal (`dunning_notices`, `write_offs`), and dunning reads the customer's events by the entries'
metadata `dunning` (dunning/store.py): a mirror entry carrying that metadata would count as a second notice's
fees, write-off or recovery. So the reversal is refused with 409 `entry_reversal_refused`, naming the notice or
write-off and what to do instead. Only entries that dunning's tables name are refused.
"""

from __future__ import annotations

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict

__all__ = ["refuse_reversal"]


async def refuse_reversal(
    ctx: Kontor, business: Business, entry_id: int, metadata: dict[str, str], order_reference: str | None
) -> None:
    """Raise 409 `entry_reversal_refused` when `entry_id` is a notice's fees and interest, a write-off or a
    recovery that dunning recorded; return otherwise."""
    kind = metadata.get("dunning")
    key = (business.merchant_id, business.code)
    if kind == "charges" and metadata.get("notice_id", "").isdigit():
        customer = await ctx.pool.fetchval(
            "SELECT customer FROM dunning_notices WHERE merchant_id = $1 AND business = $2 AND notice_id = $3 "
            "AND entry_id = $4",
            *key,
            int(metadata["notice_id"]),
            entry_id,
        )
        if customer is not None:
            raise Conflict(
                "entry_reversal_refused",
                f"entry {entry_id} is the fees and interest of dunning notice {metadata['notice_id']} of customer "
                f"{customer}: it is not reversed on its own; waive them with a correction entry that credits the "
                "customer's receivable (dunning applies a credit to fees and interest first)",
            )
    elif kind == "write_off":
        write_off = await ctx.pool.fetchval(
            "SELECT write_off_id FROM write_offs WHERE merchant_id = $1 AND business = $2 AND entry_id = $3",
            *key,
            entry_id,
        )
        if write_off is not None:
            raise Conflict(
                "entry_reversal_refused",
                f"entry {entry_id} is write-off {write_off}: it is not reversed on its own; a write-off stands with "
                "its VAT correction, and a later payment of the customer recovers it (VAT due again)",
            )
    elif kind == "recovery" and metadata.get("write_off_id", "").isdigit():
        found = await ctx.pool.fetchval(
            "SELECT true FROM write_offs WHERE merchant_id = $1 AND business = $2 AND write_off_id = $3",
            *key,
            int(metadata["write_off_id"]),
        )
        if found:
            raise Conflict(
                "entry_reversal_refused",
                f"entry {entry_id} recovers write-off {metadata['write_off_id']}: it is not reversed on its own; it "
                "stands with the payment that brought it",
            )
