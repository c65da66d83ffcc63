"""Bank statements (ISO 20022 CAMT.053): the uploaded file read into statements and lines, streamed, off the loop.

Split from `payments.bank` (which books and matches the lines) because it runs in a worker thread
(`payments.uploads.run_parser`): nothing here touches the database or the event loop.

Parsing is safe and bounded: defusedxml refuses DTDs, entity declarations and external references (no
billion laughs, no XXE); the XML is read incrementally and each entry is dropped from the tree once read,
so memory grows with the lines kept, not with the file. Tags are read without their namespace, so
camt.053.001.02 to .08 all work. The whole upload is validated before anything is booked; errors name
the element (`Stmt[1]/Ntry[3]/Amt`) or, for XML that does not parse, the line and column, prefixed
with the member's name for a ZIP.

Real files, as banks deliver them:
- a ZIP of CAMT files is read member by member: at most `MEMBERS_MAX` files, `UNCOMPRESSED_BYTES_MAX`
  uncompressed in all (counted while reading, not taken from the headers), only `.xml` members (macOS
  `__MACOSX/` metadata is skipped), no absolute paths or `..`, no encryption; anything else is refused
  saying which member and why;
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
import re
import zipfile
from collections.abc import Callable
from datetime import date
from typing import IO, NamedTuple
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml import DefusedXmlException

from ledger.domain import DATE_MAX, DATE_MIN, Horizon
from ledger.errors import FieldError, Unprocessable
from ledger.money import AmountError, parse_amount

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
MEMBERS_MAX = 100  # files read from a ZIP archive
ENTRIES_DECLARED_MAX = 4 * MEMBERS_MAX  # entries of its directory, with folders and macOS metadata
UNCOMPRESSED_BYTES_MAX = 128 * 1024 * 1024  # 4x the body limit of a plain statement
ERRORS_LISTED = 50
_READ_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"^[\w .,()+@=-]+(/[\w .,()+@=-]+)*$")


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


class _Part(NamedTuple):  # a line before its statement's identity is known (the Stmt element ends)
    entry_no: int
    detail_no: int
    amount: int
    booked: bool
    booking_date: date
    reference: str
    remittance: str
    counterparty: str
    counterparty_iban: str


def parse_statements(source: IO[bytes], currency: str, horizon: Horizon | None = None) -> list[Statement]:
    """Every statement of the upload (a CAMT.053 document or a ZIP of them); 422 naming every error (up to 50),
    or, for a valid file with booking dates after `horizon`, 422 `date_beyond_horizon` naming them."""
    upload = _Upload(currency)
    zipped = source.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    source.seek(0)
    statements = _read_zip(source, upload) if zipped else _Document(upload, "").read(_Hashing(source, None))
    keys = [s.key for s in statements]
    if len(set(keys)) != len(keys):
        upload.errors.append(FieldError("Stmt/Id", "a statement (account, Id and date) repeats within the upload"))
    if upload.errors:
        raise _invalid(upload.errors)
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


def _invalid(errors: list[FieldError]) -> Unprocessable:
    return Unprocessable(
        "invalid_bank_statement",
        "the bank statement is not a valid CAMT.053; nothing was booked",
        errors[:ERRORS_LISTED],
    )


def _refuse(where: str, message: str) -> Unprocessable:
    return _invalid([FieldError(where, message)])


# --- ZIP archives ----------------------------------------------------------------------------------------
def _read_zip(source: IO[bytes], upload: _Upload) -> list[Statement]:
    declared = _entries_declared(source)  # before zipfile reads the whole central directory into memory
    if declared > ENTRIES_DECLARED_MAX:
        raise _refuse("file", f"the ZIP archive holds {declared} entries; at most {MEMBERS_MAX} files are read")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse("file", f"not a readable ZIP archive ({exc})") from exc
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if not members:
        raise _refuse("file", "the ZIP archive holds no file; it should hold CAMT.053 .xml files")
    if len(members) > MEMBERS_MAX:
        raise _refuse("file", f"the ZIP archive holds {len(members)} files; at most {MEMBERS_MAX} are read")
    for member in members:
        _check_member(member)
    if sum(m.file_size for m in members) > UNCOMPRESSED_BYTES_MAX:
        raise _refuse("file", f"the ZIP archive unpacks to more than {UNCOMPRESSED_BYTES_MAX // 2**20} MiB")
    budget = [UNCOMPRESSED_BYTES_MAX]  # what may still be unpacked; the headers' sizes are not trusted
    statements: list[Statement] = []
    for member in members:
        try:
            with archive.open(member) as raw:
                reader = _Hashing(raw, budget, member.filename)
                statements += _Document(upload, f"{member.filename}: ").read(reader)
        except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
            raise _refuse(member.filename, f"the member cannot be unpacked ({exc})") from exc
    return statements


def _entries_declared(source: IO[bytes]) -> int:
    """The entry count of the archive's end-of-central-directory record (0 when there is none: zipfile says so)."""
    size = source.seek(0, 2)
    source.seek(max(size - 22 - 65535, 0))  # the record is 22 bytes, followed by a comment of at most 64 KiB
    tail = source.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 12:
        return 0
    return int.from_bytes(tail[at + 10 : at + 12], "little")  # 0xFFFF: a ZIP64 archive, refused as too many


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename
    shown = name if _SAFE_NAME.match(name) else repr(name)
    if not _SAFE_NAME.match(name) or ".." in name.split("/"):
        raise _refuse(shown, "a member name with an absolute path, '..', a drive, backslashes or control characters")
    if member.flag_bits & 0x1:
        raise _refuse(shown, "the member is encrypted")
    if not name.lower().endswith(".xml"):
        raise _refuse(
            shown, "only CAMT.053 .xml files are read from a ZIP archive (no other files, no nested archives)"
        )


class _Hashing:
    """A reader that hashes what passes and, for ZIP members, stops at the unpacking budget."""

    def __init__(self, raw: IO[bytes], budget: list[int] | None, name: str = "") -> None:
        self.raw, self.budget, self.name = raw, budget, name
        self.digest = hashlib.sha256()

    def read(self, size: int = _READ_BYTES) -> bytes:
        data = self.raw.read(min(size, _READ_BYTES) if size > 0 else _READ_BYTES)
        if self.budget is not None:
            self.budget[0] -= len(data)
            if self.budget[0] < 0:
                message = f"the ZIP archive unpacks to more than {UNCOMPRESSED_BYTES_MAX // 2**20} MiB"
                raise _refuse(self.name, message)
        self.digest.update(data)
        return data


# --- one XML document ------------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(node: Element, *path: str) -> Element | None:
    for name in path:
        found = next((c for c in node if _local(c.tag) == name), None)
        if found is None:
            return None
        node = found
    return node


def _text(node: Element | None, *path: str) -> str:
    found = None if node is None else _child(node, *path)
    return (found.text or "").strip() if found is not None else ""


def _children(node: Element, name: str) -> list[Element]:
    return [c for c in node if _local(c.tag) == name]


def _texts(node: Element, name: str) -> list[str]:
    return [(e.text or "").strip() for e in node.iter() if _local(e.tag) == name and (e.text or "").strip()]


def _day(text: str) -> date | None:
    """A date the journal can hold (DATE_MIN to DATE_MAX), else None (the caller names the element)."""
    try:
        day = date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None
    return day if day is None or DATE_MIN <= day <= DATE_MAX else None


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
        self.parts: list[_Part] = []
        self.balances: dict[str, Balance] = {}  # of the statement being read, by type code (OPBD, PRCD, CLBD, ...)
        self.balance_no = 0
        self.entry_no = 0
        self.group_created = ""

    def error(self, where: str, message: str) -> None:
        self.upload.errors.append(FieldError(f"{self.prefix}{where}", message))

    def read(self, source: _Hashing) -> list[Statement]:
        stack: list[str] = []
        parents: list[Element] = []
        try:
            for event, node in SafeET.iterparse(source, events=("start", "end"), forbid_dtd=True):
                if event == "start":
                    stack.append(_local(node.tag))
                    parents.append(node)
                    if len(stack) <= 2 and tuple(stack) != _STMT_PATH[: len(stack)]:
                        raise _refuse(
                            f"{self.prefix}Document/BkToCstmrStmt", "not a CAMT.053 bank-to-customer statement"
                        )
                    continue
                stack.pop()
                parents.pop()
                self._ended(tuple(stack), _local(node.tag), node, parents[-1] if parents else None)
        except ParseError as exc:
            at_line, column = exc.position  # expat counts columns from 0
            raise _refuse(
                f"{self.prefix}line {at_line}, column {column + 1}", f"not well-formed XML: {exc.msg}"
            ) from exc
        except DefusedXmlException as exc:
            raise _refuse(f"{self.prefix}document", f"forbidden XML construct: {type(exc).__name__}") from exc
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
            self.group_created = _text(node, "CreDtTm")
        elif path == _STMT_PATH[:2] and name == "Stmt":
            self._statement(node)
        else:
            return
        if parent is not None:
            parent.remove(node)  # read: drop it, so that memory does not grow with the file

    def _entry(self, ntry: Element) -> None:
        self.upload.entries += 1
        if self.upload.entries > ENTRIES_MAX:
            raise _refuse(f"{self.prefix}Document/BkToCstmrStmt/Stmt", f"more than {ENTRIES_MAX} entries in one upload")
        self.entry_no += 1
        where = f"Stmt[{len(self.statements) + 1}]/Ntry[{self.entry_no}]"
        self.parts += _entry_parts(ntry, where, self.entry_no, self.upload.currency, self.error)

    def _balance(self, bal: Element) -> None:
        self.balance_no += 1
        where = f"Stmt[{len(self.statements) + 1}]/Bal[{self.balance_no}]"
        kind = _text(bal, "Tp", "CdOrPrtry", "Cd") or _text(bal, "Tp", "CdOrPrtry", "Prtry")
        if kind not in _BALANCE_TYPES:
            return  # available, interim, forward balances: not what the checks compare
        amount = _amount(_child(bal, "Amt"), f"{where}/Amt", self.upload.currency, self.error, allow_zero=True)
        indicator = _text(bal, "CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            self.error(f"{where}/CdtDbtInd", "CRDT or DBIT required")
        on = _day(_text(bal, "Dt", "Dt") or _text(bal, "Dt", "DtTm"))
        if on is None:
            self.error(f"{where}/Dt", "the balance's date (YYYY-MM-DD) is required")
        if amount is not None and indicator in ("CRDT", "DBIT") and on is not None:
            self.balances.setdefault(kind, Balance(amount if indicator == "CRDT" else -amount, on))

    def _header(self, name: str, node: Element) -> None:
        where = f"Stmt[{len(self.statements) + 1}]"
        currency = self.upload.currency
        if name == "Id" and not 1 <= len((node.text or "").strip()) <= 35:
            self.error(f"{where}/Id", "required, at most 35 characters")
        if name == "Acct":
            account = _text(node, "Id", "IBAN") or _text(node, "Id", "Othr", "Id")
            if not account or len(account) > 34:
                self.error(f"{where}/Acct/Id", "the account's IBAN or other Id is required (at most 34 characters)")
            account_ccy = _child(node, "Ccy")
            if account_ccy is not None and (account_ccy.text or "").strip() != currency:
                self.error(f"{where}/Acct/Ccy", f"{account_ccy.text!r}: this business code books {currency}")

    def _statement(self, stmt: Element) -> None:
        where = f"Stmt[{len(self.statements) + 1}]"
        statement_id = _text(stmt, "Id")
        account = _text(stmt, "Acct", "Id", "IBAN") or _text(stmt, "Acct", "Id", "Othr", "Id")
        for name in ("Id", "Acct"):
            if _child(stmt, name) is None:
                self.error(f"{where}/{name}", "required")
        on = _day(_text(stmt, "FrToDt", "ToDtTm") or _text(stmt, "CreDtTm") or self.group_created)
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
    text = _text(stmt, "ElctrncSeqNb") or _text(stmt, "LglSeqNb")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > _SEQUENCE_MAX:
        error(where, "a sequence number of at most 18 digits")
        return None
    return int(text)


# --- one entry -------------------------------------------------------------------------------------------
def _entry_parts(ntry: Element, where: str, n_no: int, currency: str, error: Callable[[str, str], None]) -> list[_Part]:
    """The entry's line, or one line per payment of a batch entry (several TxDtls that add up to it)."""
    amount = _amount(_child(ntry, "Amt"), f"{where}/Amt", currency, error)
    indicator = _text(ntry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        error(f"{where}/CdtDbtInd", "CRDT or DBIT required")
    status = _child(ntry, "Sts")  # <Sts>BOOK</Sts> up to .001.04, <Sts><Cd>BOOK</Cd></Sts> after
    state = (_text(status, "Cd") if status is not None and len(status) else _text(ntry, "Sts")) or "BOOK"
    on = _day(_text(ntry, "BookgDt", "Dt") or _text(ntry, "BookgDt", "DtTm") or _text(ntry, "ValDt", "Dt"))
    if on is None:
        error(f"{where}/BookgDt/Dt", "a booking date (YYYY-MM-DD) is required")
    if amount is None or indicator not in ("CRDT", "DBIT") or on is None:
        return []
    signed = amount if indicator == "CRDT" else -amount
    reference = next(iter(_texts(ntry, "AcctSvcrRef") + _texts(ntry, "NtryRef")), f"{n_no}")[:64]
    booked = state != "PDNG"
    payments = _payments(ntry, signed, currency)
    if payments is None:
        return [_Part(n_no, 0, signed, booked, on, reference, _remittance(ntry), *_party(ntry, signed > 0))]
    parts = []
    for d_no, (detail, part) in enumerate(payments, start=1):
        name, iban = _party(detail, part > 0)
        if not name and not iban:
            name, iban = _party(ntry, part > 0)
        parts.append(_Part(n_no, d_no, part, booked, on, f"{reference}/{d_no}"[:64], _remittance(detail), name, iban))
    return parts


def _amount(
    amt: Element | None, where: str, currency: str, error: Callable[[str, str], None], *, allow_zero: bool = False
) -> int | None:
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
    details = [d for block in _children(ntry, "NtryDtls") for d in _children(block, "TxDtls")]
    if len(details) < 2:
        return None
    payments = []
    for detail in details:
        amt = _child(detail, "Amt")
        if amt is None:  # camt.053.001.02 has the amount only in the amount details
            amt = _child(detail, "AmtDtls", "TxAmt", "Amt")
        if amt is None or amt.get("Ccy") != currency:
            return None
        try:
            amount = parse_amount((amt.text or "").strip(), currency)
        except AmountError:
            return None
        indicator = _text(detail, "CdtDbtInd") or ("CRDT" if signed > 0 else "DBIT")
        payments.append((detail, amount if indicator == "CRDT" else -amount))
    return payments if sum(p for _, p in payments) == signed else None


def _remittance(node: Element) -> str:
    """Unstructured and structured remittance texts, then the end-to-end id (unless the payer gave none)."""
    ends = [t for t in _texts(node, "EndToEndId") if t != "NOTPROVIDED"]
    return " ".join(_texts(node, "Ustrd") + _texts(node, "Ref") + ends)[:2000]


def _party(node: Element, incoming: bool) -> tuple[str, str]:
    """The counterparty's name and account: the debtor's for money in, the creditor's for money out (camt.053
    up to .04 names the party `Dbtr/Nm`, later versions `Dbtr/Pty/Nm`); a node without related parties gives
    the first name it holds."""
    party, account = ("Dbtr", "DbtrAcct") if incoming else ("Cdtr", "CdtrAcct")
    related = [e for e in node.iter() if _local(e.tag) == "RltdPties"]
    if not related:
        return " ".join(_texts(node, "Nm")[:1])[:140], ""
    name = iban = ""
    for parties in related:
        found = _child(parties, party)
        if found is not None and not name:
            name = _text(found, "Nm") or _text(found, "Pty", "Nm")
        held = _child(parties, account)
        if held is not None and not iban:
            iban = _text(held, "Id", "IBAN") or _text(held, "Id", "Othr", "Id")
    return name[:140], iban[:34]
