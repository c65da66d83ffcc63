"""What the generic reversal (`POST .../entries/{id}/reversal`) may not take back: the payments service's own
bookings, whose state it keeps beside the journal.

An order's documents (invoice, credit note for a return, goodwill, cancellation, payment) stand in
`order_documents` with the entry that booked them; Amazon Pay's captures, refunds, chargebacks and won disputes
in the Amazon mirror; reconciliation's parkings and resolutions in `reconciliation_exceptions`; payouts in
`payouts`. Reversing one of those entries alone would leave the order "invoiced" without its receivable, PSP no
longer what Amazon owes, or an exception resolved whose money is back in SUSPENSE. So the reversal is refused
with 409 `entry_reversal_refused`, naming the document and what to do instead. Only entries that the tables
name are refused (metadata alone proves nothing: a poster may write any metadata); an entry is found through the
key its metadata carries, so each check is one primary-key or indexed lookup.
"""

from __future__ import annotations

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import Conflict

__all__ = ["refuse_reversal"]

_DOCUMENTS = ("invoice", "return", "goodwill", "cancellation", "payment")
_INSTEAD = {
    "invoice": "take it back with a credit note (POST .../orders/{order}/returns) or a goodwill "
    "(POST .../orders/{order}/goodwills), which keep the order, its VAT and Amazon Pay in step",
    "return": "a credit note stands once issued: book what corrects it as a new entry naming the order "
    "(order_reference)",
    "goodwill": "a goodwill stands once given: book what corrects it as a new entry naming the order (order_reference)",
    "cancellation": "a cancellation stands once made: invoice what is still to be delivered instead",
    "payment": "a payment stands as the money arrived: book what corrects it (a repayment, or a payment booked "
    "twice) as an entry of its own, Dr receivables (the customer) / Cr the account the money came in on, naming "
    "the order (order_reference)",
}
_NAMES = {"invoice": "invoice", "return": "credit note", "goodwill": "goodwill", "cancellation": "cancellation",
          "payment": "payment"}  # fmt: skip


def _refuse(entry_id: int, what: str, instead: str) -> Conflict:
    return Conflict("entry_reversal_refused", f"entry {entry_id} is {what}: it is not reversed on its own; {instead}")


async def refuse_reversal(
    ctx: Kontor, business: Business, entry_id: int, metadata: dict[str, str], order_reference: str | None
) -> None:
    """Raise 409 `entry_reversal_refused` when `entry_id` books a document or event the payments service keeps
    state for (see the module docstring); return when it does not."""
    key = (business.merchant_id, business.code)
    pool = ctx.pool
    # an order's document: found by the order the entry names (a bank line's payment carries no `payment`
    # metadata), else by the document number its metadata names
    document = None
    if order_reference is not None:
        document = await pool.fetchrow(
            "SELECT kind, ref, order_ref FROM order_documents WHERE merchant_id = $1 AND business = $2 "
            "AND order_ref = $3 AND entry_id = $4 LIMIT 1",
            *key,
            order_reference,
            entry_id,
        )
    for kind in _DOCUMENTS:
        if document is not None or metadata.get(kind) is None:
            continue
        document = await pool.fetchrow(
            "SELECT kind, ref, order_ref FROM order_documents WHERE merchant_id = $1 AND business = $2 AND kind = $3 "
            "AND ref = $4 AND entry_id = $5",
            *key,
            kind,
            metadata[kind],
            entry_id,
        )
    if document is not None:
        kind, ref, order = document["kind"], document["ref"], document["order_ref"]
        raise _refuse(entry_id, f"the {_NAMES[kind]} {ref} of order {order}", _INSTEAD[kind].format(order=order))
    amazon = "booked as Amazon Pay reported it, so the Amazon Pay clearing account would no longer be what Amazon owes"
    if (charge := metadata.get("amazon_charge_id")) is not None and await pool.fetchval(
        "SELECT true FROM amazon_charges WHERE merchant_id = $1 AND business = $2 AND charge_id = $3 AND entry_id = $4",
        *key,
        charge,
        entry_id,
    ):
        raise _refuse(entry_id, f"the capture of Amazon Pay charge {charge} of order {order_reference}",
                      f"it is {amazon}; give money back with a credit note or goodwill of the order")  # fmt: skip
    if (refund := metadata.get("amazon_refund_id")) is not None and await pool.fetchval(
        "SELECT true FROM amazon_refunds WHERE merchant_id = $1 AND business = $2 AND refund_id = $3 AND entry_id = $4",
        *key,
        refund,
        entry_id,
    ):
        raise _refuse(entry_id, f"Amazon Pay refund {refund} of order {order_reference}", f"it is {amazon}")
    if (chargeback := metadata.get("amazon_chargeback_id")) is not None and await pool.fetchval(
        "SELECT true FROM chargebacks c LEFT JOIN disputes d ON d.merchant_id = c.merchant_id "
        "AND d.chargeback_id = c.chargeback_id WHERE c.merchant_id = $1 AND c.business = $2 "
        "AND c.chargeback_id = $3 AND $4 IN (c.entry_id, d.reversal_entry_id)",
        *key,
        chargeback,
        entry_id,
    ):
        raise _refuse(entry_id, f"chargeback {chargeback} of order {order_reference} or its dispute's outcome",
                      f"it is {amazon}; a dispute is settled through POST .../disputes/{{id}}/outcome")  # fmt: skip
    if "reconciliation" in metadata or "reconciliation_exception" in metadata:
        exception = await pool.fetchval(
            "SELECT exception_id FROM reconciliation_exceptions WHERE merchant_id = $1 AND business = $2 "
            "AND $3 IN (suspense_entry_id, resolution_entry_id) "
            "AND ($4::bigint IS NULL OR exception_id = $4)",
            *key,
            entry_id,
            int(metadata["reconciliation_exception"]) if metadata.get("reconciliation_exception", "").isdigit()
            else None,
        )  # fmt: skip
        if exception is not None:
            raise _refuse(entry_id, f"the parking or resolution of reconciliation exception {exception}",
                          "an open exception is resolved or dismissed through POST "
                          f".../reconciliation/exceptions/{exception}/resolution; a resolution stands, so book "
                          "what corrects it as a new entry")  # fmt: skip
    if (settlement := metadata.get("settlement_id")) is not None and await pool.fetchval(
        "SELECT true FROM payouts WHERE merchant_id = $1 AND business = $2 AND settlement_id = $3 "
        "AND $4 IN (entry_id, clearing_entry_id)",
        *key,
        settlement,
        entry_id,
    ):
        raise _refuse(entry_id, f"a payout of Amazon Pay settlement {settlement} or its arrival at the bank",
                      f"it is {amazon}")  # fmt: skip
