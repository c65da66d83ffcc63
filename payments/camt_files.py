"""Bank statement uploads as files: one CAMT.053 document, or a ZIP archive of them, each read through a hashing,
bounded reader. No XML here: `payments.camt` maps each document to statements and lines.

Split from `payments.camt` because archive safety is its own concern: a ZIP is read member by member, at most
`MEMBERS_MAX` files and `UNCOMPRESSED_BYTES_MAX` uncompressed in all (counted while reading, not taken from the
headers; a directory declaring more than `ENTRIES_DECLARED_MAX` entries is refused before zipfile reads it), only
`.xml` members (macOS `__MACOSX/` metadata is skipped), no absolute paths or `..`, no encryption; anything else is
a 422 `invalid_bank_statement` naming the member and why. Every error of an upload is that one 422 (`invalid`),
listing up to `ERRORS_LISTED`.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Callable
from typing import IO, TypeVar

from ledger.errors import FieldError, Unprocessable

__all__ = [
    "ENTRIES_DECLARED_MAX",
    "ERRORS_LISTED",
    "MEMBERS_MAX",
    "UNCOMPRESSED_BYTES_MAX",
    "HashingReader",
    "check_member",
    "invalid",
    "read_documents",
    "refuse",
]

MEMBERS_MAX = 100  # files read from a ZIP archive
ENTRIES_DECLARED_MAX = 4 * MEMBERS_MAX  # entries of its directory, with folders and macOS metadata
UNCOMPRESSED_BYTES_MAX = 128 * 1024 * 1024  # 4x the body limit of a plain statement
ERRORS_LISTED = 50
_READ_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"^[\w .,()+@=-]+(/[\w .,()+@=-]+)*$")
T = TypeVar("T")


def invalid(errors: list[FieldError]) -> Unprocessable:
    """The upload's one 422: nothing was booked."""
    return Unprocessable(
        "invalid_bank_statement",
        "the bank statement is not a valid CAMT.053; nothing was booked",
        errors[:ERRORS_LISTED],
    )


def refuse(where: str, message: str) -> Unprocessable:
    return invalid([FieldError(where, message)])


def read_documents(source: IO[bytes], read: Callable[[HashingReader, str], list[T]]) -> list[T]:
    """`read(reader, prefix)` for the upload's one document (prefix "") or each member of its ZIP archive (prefix
    `name: `, for the errors), concatenated in the archive's order."""
    zipped = source.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    source.seek(0)
    return _read_zip(source, read) if zipped else read(HashingReader(source, None), "")


def _read_zip(source: IO[bytes], read: Callable[[HashingReader, str], list[T]]) -> list[T]:
    declared = _entries_declared(source)  # before zipfile reads the whole central directory into memory
    if declared > ENTRIES_DECLARED_MAX:
        raise refuse("file", f"the ZIP archive holds {declared} entries; at most {MEMBERS_MAX} files are read")
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise refuse("file", f"not a readable ZIP archive ({exc})") from exc
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if not members:
        raise refuse("file", "the ZIP archive holds no file; it should hold CAMT.053 .xml files")
    if len(members) > MEMBERS_MAX:
        raise refuse("file", f"the ZIP archive holds {len(members)} files; at most {MEMBERS_MAX} are read")
    for member in members:
        check_member(member)
    if sum(m.file_size for m in members) > UNCOMPRESSED_BYTES_MAX:
        raise refuse("file", f"the ZIP archive unpacks to more than {UNCOMPRESSED_BYTES_MAX // 2**20} MiB")
    budget = [UNCOMPRESSED_BYTES_MAX]  # what may still be unpacked; the headers' sizes are not trusted
    found: list[T] = []
    for member in members:
        try:
            with archive.open(member) as raw:
                found += read(HashingReader(raw, budget, member.filename), f"{member.filename}: ")
        except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
            raise refuse(member.filename, f"the member cannot be unpacked ({exc})") from exc
    return found


def _entries_declared(source: IO[bytes]) -> int:
    """The entry count of the archive's end-of-central-directory record (0 when there is none: zipfile says so)."""
    size = source.seek(0, 2)
    source.seek(max(size - 22 - 65535, 0))  # the record is 22 bytes, followed by a comment of at most 64 KiB
    tail = source.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 12:
        return 0
    return int.from_bytes(tail[at + 10 : at + 12], "little")  # 0xFFFF: a ZIP64 archive, refused as too many


def check_member(member: zipfile.ZipInfo) -> None:
    """A member that may be read: a plain relative name, not encrypted, an `.xml` file; 422 naming it otherwise."""
    name = member.filename
    shown = name if _SAFE_NAME.match(name) else repr(name)
    if not _SAFE_NAME.match(name) or ".." in name.split("/"):
        raise refuse(shown, "a member name with an absolute path, '..', a drive, backslashes or control characters")
    if member.flag_bits & 0x1:
        raise refuse(shown, "the member is encrypted")
    if not name.lower().endswith(".xml"):
        raise refuse(shown, "only CAMT.053 .xml files are read from a ZIP archive (no other files, no nested archives)")


class HashingReader:
    """A reader that hashes what passes (`digest`) and, for ZIP members, stops at the unpacking budget shared by
    the archive's members (`budget[0]`: bytes that may still be unpacked)."""

    def __init__(self, raw: IO[bytes], budget: list[int] | None, name: str = "") -> None:
        self.raw, self.budget, self.name = raw, budget, name
        self.digest = hashlib.sha256()

    def read(self, size: int = _READ_BYTES) -> bytes:
        data = self.raw.read(min(size, _READ_BYTES) if size > 0 else _READ_BYTES)
        if self.budget is not None:
            self.budget[0] -= len(data)
            if self.budget[0] < 0:
                raise refuse(self.name, f"the ZIP archive unpacks to more than {UNCOMPRESSED_BYTES_MAX // 2**20} MiB")
        self.digest.update(data)
        return data
