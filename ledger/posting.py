"""Turn a decoded request (`EntryIn`) into a validated `EntryDraft`: pure, no I/O.

Every problem is reported with its field path (`entries[3].lines[1].debit`) and all problems of one
request are reported together, so an integrator fixes a request in one round. The account lookup is
passed in as a mapping, which keeps this module free of the database and trivially testable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ledger.domain import Account, Business, EntryDraft, LineDraft, Side, check_balanced, check_customers
from ledger.errors import FieldError, Unprocessable, present
from ledger.money import AmountError, is_known_currency, parse_amount
from ledger.schemas import EntryIn, LineIn

__all__ = ["draft_entries", "draft_entry"]


def _draft_line(
    line: LineIn, business: Business, accounts: Mapping[str, Account], path: str, errors: list[FieldError]
) -> LineDraft | None:
    account = accounts.get(line.account)
    if account is None:
        errors.append(FieldError(f"{path}.account", f"no account {line.account} in business {business.code}"))
    currency = line.currency or business.currency
    if not is_known_currency(currency):
        errors.append(FieldError(f"{path}.currency", f"{currency} is not an ISO 4217 currency"))
        return None
    if (line.debit is None) == (line.credit is None):
        errors.append(FieldError(path, "give exactly one of debit or credit"))
        return None
    side, text = (Side.DEBIT, line.debit) if line.debit is not None else (Side.CREDIT, line.credit)
    text = present(text, "exactly one of debit and credit is set (checked above)")
    try:
        amount = parse_amount(text, currency)
    except AmountError as exc:
        errors.append(FieldError(f"{path}.{'debit' if side is Side.DEBIT else 'credit'}", str(exc)))
        return None
    if account is None:
        return None
    return LineDraft(account=account, side=side, amount_minor=amount, currency=currency, customer=line.customer)


def draft_entry(entry: EntryIn, business: Business, accounts: Mapping[str, Account], *, path: str = "") -> EntryDraft:
    """Validate one entry against its business code and chart of accounts."""
    prefix = f"{path}." if path else ""
    errors: list[FieldError] = []
    lines = [_draft_line(line, business, accounts, f"{prefix}lines[{i}]", errors) for i, line in enumerate(entry.lines)]
    if errors:
        raise Unprocessable("entry_invalid", "the entry has invalid lines", errors)
    drafted = tuple(line for line in lines if line is not None)
    check_customers(drafted, path=f"{prefix}lines")
    check_balanced(drafted, path=f"{prefix}lines")
    return EntryDraft(
        effective_date=entry.effective_date,
        description=entry.description,
        lines=drafted,
        reference=entry.reference,
        metadata=dict(entry.metadata),
        order_reference=entry.order_reference,
    )


def draft_entries(entries: Sequence[EntryIn], business: Business, accounts: Mapping[str, Account]) -> list[EntryDraft]:
    """Validate a batch; every invalid entry is reported, and none is drafted unless all are valid."""
    drafts: list[EntryDraft] = []
    errors: list[FieldError] = []
    for i, entry in enumerate(entries):
        try:
            drafts.append(draft_entry(entry, business, accounts, path=f"entries[{i}]"))
        except Unprocessable as exc:
            errors.extend(exc.errors or [FieldError(f"entries[{i}]", exc.detail)])
    if errors:
        raise Unprocessable("batch_invalid", f"{len(errors)} problem(s) in the batch; nothing was posted", errors)
    return drafts
