"""Payment references Kontor prints on documents, and finding them again in bank statement lines.

A document that asks a customer to pay (a dunning letter, a collection hand-over letter) carries an ISO 11649
structured creditor reference ("RF" + 2 check digits + up to 21 letters or digits, printed in groups of four:
`RF47 1000 0000 42`). SEPA credit transfers carry it in the structured remittance (`RmtInf/Strd/CdtrRefInf/Ref`)
or, typed by the customer, in the unstructured text; banks pass it through to the CAMT.053 statement. The
check digits (ISO 7064 mod 97-10, as in the IBAN) catch a mistyped reference before anything is looked up.

The reference's body is the document's kind and id: `1` + the dunning notice id, `2` + the collection case id,
each padded to 9 digits. It is registered with the customer and the amount asked (`payment_references`), so
the bank matcher (`payments.bank`) resolves it to that customer without knowing what issued it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

from ledger.domain import Business

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["KINDS", "Requested", "creditor_reference", "find", "found_in", "printed", "register"]

KINDS = {"dunning_notice": "1", "collection_case": "2"}
_CANDIDATE = re.compile(r"RF[0-9]{2}(?: ?[0-9A-Z]){1,21}")


def creditor_reference(kind: str, document_id: int) -> str:
    """The ISO 11649 reference of a document: RF, check digits, the kind's digit and the id (9 digits at least)."""
    body = f"{KINDS[kind]}{document_id:09d}"
    return f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}"


def printed(reference: str) -> str:
    """The reference as printed on paper: groups of four characters (`RF47 1000 0000 42`)."""
    return str(iso11649.format(reference))


def found_in(text: str) -> list[str]:
    """The ISO 11649 references a remittance text may name, written compact or in groups of four: every reading
    with valid check digits, longest first (text typed after a spaced reference runs into it, and one in 97 of
    those longer readings passes the check by chance: the lookup of registered references decides)."""
    out: list[str] = []
    for match in _CANDIDATE.finditer(text.upper()):
        chars = match.group(0).replace(" ", "")
        out += [chars[:end] for end in range(len(chars), 4, -1) if iso11649.is_valid(chars[:end])]
    return out


@dataclass(frozen=True)
class Requested:
    """What a payment reference stands for: who was asked to pay how much, on which document."""

    reference: str
    customer: str
    amount_minor: int
    orders: list[str]
    source: str  # e.g. "dunning_notice:42"


async def register(conn: Connection, business: Business, requested: list[Requested]) -> None:
    """Record printed references (in the caller's transaction); a reference registered before keeps its row."""
    if not requested:
        return
    await conn.execute(
        "INSERT INTO payment_references (merchant_id, business, reference, customer, amount_minor, orders, source) "
        "SELECT $1, $2, u.r, u.c, u.a, string_to_array(u.o, ','), u.s "
        "FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[]) AS u(r, c, a, o, s) "
        "ON CONFLICT DO NOTHING",
        business.merchant_id,
        business.code,
        [r.reference for r in requested],
        [r.customer for r in requested],
        [r.amount_minor for r in requested],
        [",".join(r.orders) for r in requested],  # order references hold no comma (orders.order_ref CHECK)
        [r.source for r in requested],
    )


async def find(conn: Connection, business: Business, remittance: str) -> Requested | None:
    """The registered reference a remittance text names (the first one it names), or None."""
    candidates = found_in(remittance)
    if not candidates:
        return None
    rows = await conn.fetch(
        "SELECT reference, customer, amount_minor, orders, source FROM payment_references "
        "WHERE merchant_id = $1 AND business = $2 AND reference = ANY($3::text[])",
        business.merchant_id,
        business.code,
        candidates,
    )
    known = {r["reference"]: r for r in rows}
    for candidate in candidates:
        row = known.get(candidate)
        if row is not None:
            return Requested(row["reference"], row["customer"], row["amount_minor"], list(row["orders"]), row["source"])
    return None
