"""One CAMT.053 entry (`Ntry`) mapped to its lines, and the element helpers the statement reader shares. Pure
functions of an already parsed element: no files, no database.

Split from `payments.camt` (which walks the document and assembles the statements) because an entry is the part
of the format with the most variants, read and tested here alone:
- the entry's amount (`Amt` in the business code's currency, signed by `CdtDbtInd`), its booking date (`BookgDt`,
  else `ValDt`) and its status (`<Sts>BOOK</Sts>` up to camt.053.001.04, `<Sts><Cd>BOOK</Cd></Sts>` after;
  `PDNG` is pending: it moves no balance);
- a batch entry (several `TxDtls`, each with its amount, in `Amt` or, in .001.02, `AmtDtls/TxAmt/Amt`) becomes
  one line per payment when the payments add up to the entry; otherwise it stays one line;
- each line's remittance (`Ustrd`, `Strd/.../Ref`, then the end-to-end id unless `NOTPROVIDED`) and its
  counterparty: for money in the debtor (`RltdPties/Dbtr`, `DbtrAcct`), for money out the creditor (`Cdtr`,
  `CdtrAcct`), name (`Nm`, or `Pty/Nm` after .001.04) and IBAN (or the account's other id).
Errors go to the caller's `error(where, message)`, naming the element (`Stmt[1]/Ntry[3]/Amt`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NamedTuple
from xml.etree.ElementTree import Element

from ledger.domain import DATE_MAX, DATE_MIN
from ledger.money import AmountError, parse_amount

__all__ = [
    "Part",
    "account_id",
    "amount_of",
    "child",
    "children",
    "day",
    "entry_parts",
    "local_name",
    "signed_amount",
    "text_of",
    "texts",
]


class Part(NamedTuple):  # a line before its statement's identity is known (the Stmt element ends)
    entry_no: int
    detail_no: int
    amount: int
    booked: bool
    booking_date: date
    reference: str
    remittance: str
    counterparty: str
    counterparty_iban: str


def local_name(tag: str) -> str:
    """The tag without its namespace (`{urn:iso:std:iso:20022:tech:xsd:camt.053.001.08}Ntry` -> `Ntry`)."""
    return tag.rpartition("}")[2]


def child(node: Element, *path: str) -> Element | None:
    """The first element down `path` (local names, one per level), or None."""
    for name in path:
        found = next((c for c in node if local_name(c.tag) == name), None)
        if found is None:
            return None
        node = found
    return node


def text_of(node: Element | None, *path: str) -> str:
    """The stripped text of the element down `path`, "" when there is none."""
    found = None if node is None else child(node, *path)
    return (found.text or "").strip() if found is not None else ""


def account_id(node: Element | None, *path: str) -> str:
    """The account down `path` (an `Acct`, `DbtrAcct`, `CdtrAcct`): its IBAN, else its other id, else ""."""
    return text_of(node, *path, "Id", "IBAN") or text_of(node, *path, "Id", "Othr", "Id")


def children(node: Element, name: str) -> list[Element]:
    """The direct children named `name`."""
    return [c for c in node if local_name(c.tag) == name]


def texts(node: Element, name: str) -> list[str]:
    """The non-empty texts of every element named `name` at any depth, in document order."""
    return [(e.text or "").strip() for e in node.iter() if local_name(e.tag) == name and (e.text or "").strip()]


def day(text: str) -> date | None:
    """A date the journal can hold (DATE_MIN to DATE_MAX), else None (the caller names the element)."""
    try:
        found = date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None
    return found if found is None or DATE_MIN <= found <= DATE_MAX else None


def entry_parts(ntry: Element, where: str, n_no: int, currency: str, error: Callable[[str, str], None]) -> list[Part]:
    """The entry's line, or one line per payment of a batch entry (several TxDtls that add up to it)."""
    signed = signed_amount(ntry, where, currency, error)
    status = child(ntry, "Sts")  # <Sts>BOOK</Sts> up to .001.04, <Sts><Cd>BOOK</Cd></Sts> after
    state = (text_of(status, "Cd") if status is not None and len(status) else text_of(ntry, "Sts")) or "BOOK"
    on = day(text_of(ntry, "BookgDt", "Dt") or text_of(ntry, "BookgDt", "DtTm") or text_of(ntry, "ValDt", "Dt"))
    if on is None:
        error(f"{where}/BookgDt/Dt", "a booking date (YYYY-MM-DD) is required")
    if signed is None or on is None:
        return []
    reference = next(iter(texts(ntry, "AcctSvcrRef") + texts(ntry, "NtryRef")), f"{n_no}")[:64]
    booked = state != "PDNG"
    payments = _payments(ntry, signed, currency)
    if payments is None:
        return [Part(n_no, 0, signed, booked, on, reference, _remittance(ntry), *_party(ntry, signed > 0))]
    parts = []
    for d_no, (detail, part) in enumerate(payments, start=1):
        name, iban = _party(detail, part > 0)
        if not name and not iban:
            name, iban = _party(ntry, part > 0)
        parts.append(Part(n_no, d_no, part, booked, on, f"{reference}/{d_no}"[:64], _remittance(detail), name, iban))
    return parts


def signed_amount(
    node: Element, where: str, currency: str, error: Callable[[str, str], None], *, allow_zero: bool = False
) -> int | None:
    """The node's `Amt` signed by its `CdtDbtInd` (CRDT +, DBIT -), or None with the errors reported at `where`."""
    amount = amount_of(child(node, "Amt"), f"{where}/Amt", currency, error, allow_zero=allow_zero)
    indicator = text_of(node, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        error(f"{where}/CdtDbtInd", "CRDT or DBIT required")
        return None
    return None if amount is None else amount if indicator == "CRDT" else -amount


def amount_of(
    amt: Element | None, where: str, currency: str, error: Callable[[str, str], None], *, allow_zero: bool = False
) -> int | None:
    """An `Amt` element's amount in minor units (unsigned: `CdtDbtInd` signs it), when it is in `currency` and
    positive (or zero, `allow_zero`); else None, the error reported at `where`."""
    if amt is None:
        error(where, "required")
        return None
    if amt.get("Ccy") != currency:
        error(f"{where}/@Ccy", f"{amt.get('Ccy')!r}: this business code books {currency}")
        return None
    try:
        return parse_amount((amt.text or "").strip(), currency, allow_zero=allow_zero)
    except AmountError as exc:
        error(where, str(exc))
        return None


def _payments(ntry: Element, signed: int, currency: str) -> list[tuple[Element, int]] | None:
    """The payments of a batch entry with their signed amounts, when there are several and they add up."""
    details = [d for block in children(ntry, "NtryDtls") for d in children(block, "TxDtls")]
    if len(details) < 2:
        return None
    payments = []
    for detail in details:
        amt = child(detail, "Amt")
        if amt is None:  # camt.053.001.02 has the amount only in the amount details
            amt = child(detail, "AmtDtls", "TxAmt", "Amt")
        if amt is None or amt.get("Ccy") != currency:
            return None
        try:
            amount = parse_amount((amt.text or "").strip(), currency)
        except AmountError:
            return None
        indicator = text_of(detail, "CdtDbtInd") or ("CRDT" if signed > 0 else "DBIT")
        payments.append((detail, amount if indicator == "CRDT" else -amount))
    return payments if sum(p for _, p in payments) == signed else None


def _remittance(node: Element) -> str:
    """Unstructured and structured remittance texts, then the end-to-end id (unless the payer gave none)."""
    ends = [t for t in texts(node, "EndToEndId") if t != "NOTPROVIDED"]
    return " ".join(texts(node, "Ustrd") + texts(node, "Ref") + ends)[:2000]


def _party(node: Element, incoming: bool) -> tuple[str, str]:
    """The counterparty's name and account: the debtor's for money in, the creditor's for money out (camt.053
    up to .04 names the party `Dbtr/Nm`, later versions `Dbtr/Pty/Nm`); a node without related parties gives
    the first name it holds."""
    party, account = ("Dbtr", "DbtrAcct") if incoming else ("Cdtr", "CdtrAcct")
    related = [e for e in node.iter() if local_name(e.tag) == "RltdPties"]
    if not related:
        return " ".join(texts(node, "Nm")[:1])[:140], ""
    name = iban = ""
    for parties in related:
        found = child(parties, party)
        if found is not None and not name:
            name = text_of(found, "Nm") or text_of(found, "Pty", "Nm")
        held = child(parties, account)
        if held is not None and not iban:
            iban = account_id(held)
    return name[:140], iban[:34]
