"""The balance checks of an imported bank statement: does what the bank says agree with itself, with the
statement before it and with the ledger?

After a statement's lines are booked (payments.bank), three checks run, each with its outcome (`ok`,
`failed`, `skipped` with the reason) recorded on the statement:

1. `opening_balance`: its opening balance (OPBD, else PRCD) equals the closing balance of the previous statement
   of the same bank account (by statement date, then sequence number), so that no statement is missing and none
   was booked twice; skipped for the first statement of an account or when either balance is not given;
2. `closing_balance`: opening balance + the booked lines = its closing balance (CLBD): the statement's lines are
   complete;
3. `ledger_balance`: on the closing balance's date, the ledger's bank account (role BANK) holds what the bank
   says: the latest closing balances of every bank account the business code imports statements for, added up
   (their money is all booked on the one BANK account); skipped while an account's latest statement gives no
   closing balance.

A failed check is a reconciliation exception of kind `opening_balance_mismatch`, `closing_balance_mismatch` or
`ledger_balance_mismatch` whose description names both figures and the difference (its amount, signed: the
statement's figure minus the one it is compared with). It parks nothing: the lines are already booked where
they belong; the accountant finds the cause (a missing statement, a payment booked by hand and by the bank) and
corrects it with an entry, then resolves or dismisses the exception with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

from msgspec import Struct

from ledger.domain import Business
from ledger.money import format_amount
from payments.camt import Balance, Statement
from payments.reconciliation import ExceptionDraft

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["BalanceCheck", "Checked", "balance_text", "check_statement"]

CheckName = Literal["opening_balance", "closing_balance", "ledger_balance"]


class BalanceCheck(Struct, kw_only=True):
    check: CheckName
    outcome: Literal["ok", "failed", "skipped"]
    detail: str  # what was compared, in words (or why the check was skipped)
    exception_id: int | None = None  # the exception a failed check raised
    # the figures compared (not for a skipped check): the bank's, the one it must equal, the first minus the second
    stated: str | None = None
    expected: str | None = None
    difference: str | None = None


class Checked(NamedTuple):
    checks: list[BalanceCheck]
    exceptions: list[tuple[CheckName, ExceptionDraft]]  # one per failed check


class _Money:
    def __init__(self, currency: str) -> None:
        self.currency = currency

    def __call__(self, minor: int) -> str:
        return format_amount(minor, self.currency)


def _name(s: Statement) -> str:
    seq = f" (no. {s.sequence})" if s.sequence is not None else ""
    return f"statement {s.key.statement_id}{seq} of account {s.key.account} dated {s.key.statement_on}"


async def check_statement(conn: Connection, business: Business, s: Statement, bank_account_id: int) -> Checked:
    """Run the three checks of the module docstring on statement `s` (its lines booked, its row stored)."""
    money = _Money(business.currency)
    out = Checked([], [])
    await _opening(conn, business, s, money, out)
    _closing(s, money, out)
    await _ledger(conn, business, s, bank_account_id, money, out)
    return out


def _compared(out: Checked, check: CheckName, detail: str, money: _Money, stated: int, expected: int) -> None:
    """Record a check of `stated` (the bank's figure) against `expected`; a difference raises an exception."""
    failed = stated != expected
    out.checks.append(
        BalanceCheck(
            check=check,
            outcome="failed" if failed else "ok",
            detail=detail,
            stated=money(stated),
            expected=money(expected),
            difference=money(stated - expected),
        )
    )
    if failed:
        out.exceptions.append((check, ExceptionDraft(0, f"{check}_mismatch", detail, stated - expected)))


def _skip(out: Checked, check: CheckName, detail: str) -> None:
    out.checks.append(BalanceCheck(check=check, outcome="skipped", detail=detail))


async def _opening(conn: Connection, business: Business, s: Statement, money: _Money, out: Checked) -> None:
    check: CheckName = "opening_balance"
    if s.opening is None:
        _skip(out, check, "the statement gives no opening balance (OPBD or PRCD)")
        return
    previous = await conn.fetchrow(
        "SELECT statement_id, statement_on, sequence, closing_minor FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND account = $3 "
        "AND (statement_on, COALESCE(sequence, -1), statement_id) < ($4, COALESCE($5::bigint, -1), $6) "
        "ORDER BY statement_on DESC, COALESCE(sequence, -1) DESC, statement_id DESC LIMIT 1",
        business.merchant_id,
        business.code,
        s.key.account,
        s.key.statement_on,
        s.sequence,
        s.key.statement_id,
    )
    if previous is None:
        _skip(out, check, f"the first statement of account {s.key.account} imported: nothing to compare with")
        return
    before = f"statement {previous['statement_id']} of {previous['statement_on']}"
    if previous["closing_minor"] is None:
        _skip(out, check, f"the previous {before} gives no closing balance")
        return
    closing = previous["closing_minor"]
    if s.opening.amount == closing:
        detail = f"opening balance {money(closing)} = closing balance of the previous {before}"
        _compared(out, check, detail, money, s.opening.amount, closing)
        return
    gap = ""
    if s.sequence is not None and previous["sequence"] is not None and s.sequence > previous["sequence"] + 1:
        first, last = previous["sequence"] + 1, s.sequence - 1
        gap = (
            f"; statement{'s' if last > first else ''} no. {first}{f' to {last}' if last > first else ''} not imported"
        )
    detail = (
        f"opening balance {money(s.opening.amount)} of {_name(s)} differs from the closing balance "
        f"{money(closing)} of the previous {before} by {money(s.opening.amount - closing)}{gap}"
    )
    _compared(out, check, detail, money, s.opening.amount, closing)


def _closing(s: Statement, money: _Money, out: Checked) -> None:
    check: CheckName = "closing_balance"
    if s.opening is None or s.closing is None:
        _skip(out, check, "the statement gives no opening and closing balance to add the lines to")
        return
    expected = s.opening.amount + s.movements
    sums = f"opening balance {money(s.opening.amount)} + booked lines {money(s.movements)} = {money(expected)}"
    detail = (
        f"{sums} = closing balance"
        if expected == s.closing.amount
        else f"{_name(s)}: {sums}, but its closing balance is {money(s.closing.amount)} (difference "
        f"{money(s.closing.amount - expected)}): the statement's lines do not add up to its balances"
    )
    _compared(out, check, detail, money, s.closing.amount, expected)


async def _ledger(
    conn: Connection, business: Business, s: Statement, bank_account_id: int, money: _Money, out: Checked
) -> None:
    check: CheckName = "ledger_balance"
    if s.closing is None:
        _skip(out, check, "the statement gives no closing balance (CLBD)")
        return
    on = s.closing.on
    latest = await conn.fetch(
        "SELECT DISTINCT ON (account) account, statement_id, statement_on, closing_minor FROM bank_statements "
        "WHERE merchant_id = $1 AND business = $2 AND account <> '' AND COALESCE(closing_on, statement_on) <= $3 "
        "ORDER BY account, COALESCE(closing_on, statement_on) DESC, COALESCE(sequence, -1) DESC, statement_id DESC",
        business.merchant_id,
        business.code,
        on,
    )
    unknown = [r for r in latest if r["closing_minor"] is None]
    if unknown:
        r = unknown[0]
        _skip(
            out,
            check,
            f"account {r['account']}'s latest statement on {on} ({r['statement_id']} of {r['statement_on']}) gives "
            "no closing balance: the ledger's bank account cannot be compared",
        )
        return
    bank = sum(r["closing_minor"] for r in latest) if latest else s.closing.amount
    ledger = int(
        await conn.fetchval(
            "SELECT COALESCE(sum(debit_minor) - sum(credit_minor), 0) FROM balance_totals WHERE merchant_id = $1 "
            "AND business = $2 AND account_id = $3 AND currency = $4 AND day <= $5",
            business.merchant_id,
            business.code,
            bank_account_id,
            business.currency,
            on,
        )
    )
    says = (
        f"closing balance {money(bank)}"
        if len(latest) <= 1
        else f"closing balances of {len(latest)} accounts adding up to {money(bank)} ("
        + ", ".join(f"{r['account']}: {money(r['closing_minor'])}" for r in latest)
        + ")"
    )
    more = "the ledger holds more" if ledger > bank else "the bank holds more"
    detail = (
        f"{says} = the ledger's bank account on {on}"
        if ledger == bank
        else f"{_name(s)}: the bank's {says} on {on}, the ledger's bank account {money(ledger)}: {more}, by "
        f"{money(abs(ledger - bank))}"
    )
    _compared(out, check, detail, money, bank, ledger)


def balance_text(balance: Balance | None, currency: str) -> str | None:
    return None if balance is None else format_amount(balance.amount, currency)
