"""Bank statements (ISO 20022 CAMT.053): the uploaded file read into statements and lines, streamed, off the loop.

Split from `payments.bank` (which books and matches the lines) because it runs in a worker thread
(`payments.uploads.run_parser`): nothing here touches the database or the event loop. The upload as files (one
document or a ZIP of them, hashed and bounded while read) is `payments.camt_files`; one entry (`Ntry`) mapped to
its lines is `payments.camt_entries`; this module walks the document and assembles the statements.

Parsing is safe and bounded: defusedxml refuses DTDs, entity declarations and external references (no
billion laughs, no XXE); the XML is read incrementally and each entry is dropped from the tree once read,
so memory grows with the lines kept, not with the file. Tags are read without their namespace, so
camt.053.001.02 to .08 all work. The whole upload is validated before anything is booked; errors name
the element (`Stmt[1]/Ntry[3]/Amt`) or, for XML that does not parse, the line and column, prefixed
with the member's name for a ZIP.

Real files, as banks deliver them:
- a ZIP of CAMT files is read member by member (`payments.camt_files`: at most `MEMBERS_MAX` files,
  `UNCOMPRESSED_BYTES_MAX` uncompressed in all, only safe `.xml` members); anything else is refused saying which
  member and why;
- an entry that carries several payments (a batch: several `TxDtls`, each with its amount) becomes one
  line per payment, matched on its own, when the payments add up to the entry; otherwise it stays one
  line;
- a statement is identified by its account (IBAN, or the other account id), its `Id` and its date (the
  end of `FrToDt`, else its `CreDtTm`, else the message's `CreDtTm`): two accounts' statements may share
  an `Id`. Its fingerprint covers what it says (identity, sequence number, balances and lines), so the same
  statement sent again, zipped or not, is recognised whatever the message header says;
- its balances (`Bal`): the opening booked balance (`OPBD`, else the previous closing booked `PRCD`) and the
  closing booked balance (`CLBD`), signed by `CdtDbtInd` (DBIT: overdrawn), with their dates; its sequence
  number is `ElctrncSeqNb`, else `LglSeqNb` (payments.bank checks the balances against each other, the
  previous statement and the ledger);
- each line keeps its counterparty: for money in the debtor (`RltdPties/Dbtr`, `DbtrAcct`), for money out
  the creditor (`Cdtr`, `CdtrAcct`): name and IBAN (or the account's other id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from typing import IO, NamedTuple
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml import DefusedXmlException

from ledger.domain import Horizon
from ledger.errors import FieldError
from payments.camt_entries import Part, account_id, child, day, entry_parts, local_name, signed_amount, text_of
from payments.camt_files import MEMBERS_MAX, UNCOMPRESSED_BYTES_MAX, HashingReader, invalid, read_documents, refuse

__all__ = [
    "ENTRIES_MAX",
    "MEMBERS_MAX",
    "UNCOMPRESSED_BYTES_MAX",
    "Balance",
    "Line",
    "Statement",
    "StatementKey",
    "parse_statements",
]

ENTRIES_MAX = 100_000


class StatementKey(NamedTuple):
    """What identifies a statement: the account, the bank's statement Id and the statement's date."""

    account: str
    statement_id: str
    statement_on: date

    @property
    def ref(self) -> str:
        return f"{self.account}/{self.statement_id}/{self.statement_on.isoformat()}"


class Line(NamedTuple):
    statement: StatementKey
    entry_no: int  # 1-based position of the Ntry in its Stmt
    detail_no: int  # 0: the whole entry; n: its n-th payment (TxDtls) when a batch entry is split
    amount: int  # signed: + credit to the account
    booked: bool
    booking_date: date
    reference: str  # AcctSvcrRef or NtryRef, for people
    remittance: str  # Ustrd/Strd texts and end-to-end ids, for matching
    counterparty: str  # the other party's name: the debtor of money in, the creditor of money out
    counterparty_iban: str = ""  # and its account: IBAN, else the account's other id ("" when not given)


class Balance(NamedTuple):
    amount: int  # signed minor units: < 0 overdrawn (CdtDbtInd DBIT)
    on: date


class Statement(NamedTuple):
    key: StatementKey
    lines: list[Line]
    content_sha256: bytes  # of what the statement says: identity, sequence, balances and lines
    document_sha256: bytes  # of the XML document it came from (the body, or a ZIP member)
    opening: Balance | None = None  # OPBD, else PRCD
    closing: Balance | None = None  # CLBD
    sequence: int | None = None  # ElctrncSeqNb, else LglSeqNb

    @property
    def movements(self) -> int:
        """The booked lines' sum (pending lines move no balance)."""
        return sum(line.amount for line in self.lines if line.booked)


def parse_statements(source: IO[bytes], currency: str, horizon: Horizon | None = None) -> list[Statement]:
    """Every statement of the upload (a CAMT.053 document or a ZIP of them); 422 naming every error (up to 50),
    or, for a valid file with booking dates after `horizon`, 422 `date_beyond_horizon` naming them."""
    upload = _Upload(currency)
    statements = read_documents(source, lambda reader, prefix: _Document(upload, prefix).read(reader))
    keys = [s.key for s in statements]
    if len(set(keys)) != len(keys):
        upload.errors.append(FieldError("Stmt/Id", "a statement (account, Id and date) repeats within the upload"))
    if upload.errors:
        raise invalid(upload.errors)
    if horizon is not None:
        horizon.check(
            (
                (f"Stmt[{n}]/Ntry[{line.entry_no}]/BookgDt", line.booking_date)
                for n, s in enumerate(statements, start=1)
                for line in s.lines
                if line.booked and line.booking_date > horizon.last
            ),
            "booking date",
        )
    return statements


# --- one XML document ------------------------------------------------------------------------------------
_STMT_PATH = ("Document", "BkToCstmrStmt", "Stmt")


class _Upload:
    """What the documents of one upload share: the errors found, the entries read."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.errors: list[FieldError] = []
        self.entries = 0


class _Document:
    """One CAMT.053 document, read incrementally: each Ntry is turned into lines and dropped from the tree."""

    def __init__(self, upload: _Upload, prefix: str) -> None:
        self.upload, self.prefix = upload, prefix
        self.statements: list[Statement] = []
        self.parts: list[Part] = []
        self.balances: dict[str, Balance] = {}  # of the statement being read, by type code (OPBD, PRCD, CLBD, ...)
        self.balance_no = 0
        self.entry_no = 0
        self.group_created = ""

    def error(self, where: str, message: str) -> None:
        self.upload.errors.append(FieldError(f"{self.prefix}{where}", message))

    def read(self, source: HashingReader) -> list[Statement]:
        stack: list[str] = []
        parents: list[Element] = []
        try:
            for event, node in SafeET.iterparse(source, events=("start", "end"), forbid_dtd=True):
                if event == "start":
                    stack.append(local_name(node.tag))
                    parents.append(node)
                    if len(stack) <= 2 and tuple(stack) != _STMT_PATH[: len(stack)]:
                        raise refuse(
                            f"{self.prefix}Document/BkToCstmrStmt", "not a CAMT.053 bank-to-customer statement"
                        )
                    continue
                stack.pop()
                parents.pop()
                self._ended(tuple(stack), local_name(node.tag), node, parents[-1] if parents else None)
        except ParseError as exc:
            at_line, column = exc.position  # expat counts columns from 0
            raise refuse(
                f"{self.prefix}line {at_line}, column {column + 1}", f"not well-formed XML: {exc.msg}"
            ) from exc
        except DefusedXmlException as exc:
            raise refuse(f"{self.prefix}document", f"forbidden XML construct: {type(exc).__name__}") from exc
        if not self.statements:
            self.error("Document/BkToCstmrStmt/Stmt", "the file has no statement")
        document_sha256 = source.digest.digest()
        return [s._replace(document_sha256=document_sha256) for s in self.statements]

    def _ended(self, path: tuple[str, ...], name: str, node: Element, parent: Element | None) -> None:
        if path == _STMT_PATH and name in ("Id", "Acct"):
            self._header(name, node)  # before the entries, so that errors come in the document's order
            return
        if path == _STMT_PATH and name == "Ntry":
            self._entry(node)
        elif path == _STMT_PATH and name == "Bal":
            self._balance(node)
        elif path == _STMT_PATH[:2] and name == "GrpHdr":
            self.group_created = text_of(node, "CreDtTm")
        elif path == _STMT_PATH[:2] and name == "Stmt":
            self._statement(node)
        else:
            return
        if parent is not None:
            parent.remove(node)  # read: drop it, so that memory does not grow with the file

    def _entry(self, ntry: Element) -> None:
        self.upload.entries += 1
        if self.upload.entries > ENTRIES_MAX:
            raise refuse(f"{self.prefix}Document/BkToCstmrStmt/Stmt", f"more than {ENTRIES_MAX} entries in one upload")
        self.entry_no += 1
        where = f"Stmt[{len(self.statements) + 1}]/Ntry[{self.entry_no}]"
        self.parts += entry_parts(ntry, where, self.entry_no, self.upload.currency, self.error)

    def _balance(self, bal: Element) -> None:
        self.balance_no += 1
        where = f"Stmt[{len(self.statements) + 1}]/Bal[{self.balance_no}]"
        kind = text_of(bal, "Tp", "CdOrPrtry", "Cd") or text_of(bal, "Tp", "CdOrPrtry", "Prtry")
        if kind not in _BALANCE_TYPES:
            return  # available, interim, forward balances: not what the checks compare
        amount = signed_amount(bal, where, self.upload.currency, self.error, allow_zero=True)
        on = day(text_of(bal, "Dt", "Dt") or text_of(bal, "Dt", "DtTm"))
        if on is None:
            self.error(f"{where}/Dt", "the balance's date (YYYY-MM-DD) is required")
        if amount is not None and on is not None:
            self.balances.setdefault(kind, Balance(amount, on))

    def _header(self, name: str, node: Element) -> None:
        where = f"Stmt[{len(self.statements) + 1}]"
        currency = self.upload.currency
        if name == "Id" and not 1 <= len((node.text or "").strip()) <= 35:
            self.error(f"{where}/Id", "required, at most 35 characters")
        if name == "Acct":
            account = account_id(node)
            if not account or len(account) > 34:
                self.error(f"{where}/Acct/Id", "the account's IBAN or other Id is required (at most 34 characters)")
            account_ccy = child(node, "Ccy")
            if account_ccy is not None and (account_ccy.text or "").strip() != currency:
                self.error(f"{where}/Acct/Ccy", f"{account_ccy.text!r}: this business code books {currency}")

    def _statement(self, stmt: Element) -> None:
        where = f"Stmt[{len(self.statements) + 1}]"
        statement_id = text_of(stmt, "Id")
        account = account_id(stmt, "Acct")
        for name in ("Id", "Acct"):
            if child(stmt, name) is None:
                self.error(f"{where}/{name}", "required")
        on = day(text_of(stmt, "FrToDt", "ToDtTm") or text_of(stmt, "CreDtTm") or self.group_created)
        if on is None:
            self.error(
                f"{where}/CreDtTm", "the statement's date (FrToDt/ToDtTm, CreDtTm or GrpHdr/CreDtTm) is required"
            )
        key = StatementKey(account, statement_id, on or date.min)
        lines = [Line(key, *part) for part in self.parts]
        sequence = _sequence(stmt, f"{where}/ElctrncSeqNb", self.error)
        opening = self.balances.get("OPBD") or self.balances.get("PRCD")
        closing = self.balances.get("CLBD")
        content = hashlib.sha256(msgspec.json.encode([key, sequence, opening, closing, lines])).digest()
        self.statements.append(Statement(key, lines, content, b"", opening, closing, sequence))
        self.parts, self.entry_no, self.balances, self.balance_no = [], 0, {}, 0


_BALANCE_TYPES = frozenset({"OPBD", "PRCD", "CLBD"})
_SEQUENCE_MAX = 10**18 - 1  # Number, 18 digits


def _sequence(stmt: Element, where: str, error: Callable[[str, str], None]) -> int | None:
    text = text_of(stmt, "ElctrncSeqNb") or text_of(stmt, "LglSeqNb")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > _SEQUENCE_MAX:
        error(where, "a sequence number of at most 18 digits")
        return None
    return int(text)
