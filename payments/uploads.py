"""Uploaded files (settlement reports, bank statements): the request body read in bounded memory, parsed off the loop.

Why: a settlement report may be 128 MiB. `await request.body()` holds the whole body in memory (and the
parsers then made decoded copies of it), and parsing it on the event loop stalled every other request
of every merchant for seconds. Here:

- the body is streamed into a temporary file (in memory up to `SPOOL_BYTES_MAX`, on disk above);
- a `multipart/form-data` body (`curl -F file=@report.csv`) is narrowed to its one file part by offsets
  into that file, without copying it; any other body is the file itself;
- the parsers get a buffered reader over the file and run in a small thread pool (`run_parser`), so the
  event loop keeps answering, and at most `PARSERS_MAX` files are parsed at once (their rows are what
  takes memory; further uploads wait with their bodies on disk).

Each upload route names the media types it reads; a body (or a file part) of another type is 415
`unsupported_media_type` naming them. `application/octet-stream`, a missing type and
`application/x-www-form-urlencoded` (what `curl --data-binary @file` sends unless told otherwise) are
read as the file too. A multipart body without exactly one file part is 422 `upload_invalid`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, ParamSpec, TypeVar

from litestar import Request
from litestar.openapi.datastructures import ResponseSpec

from ledger.errors import FieldError, Unprocessable, UnsupportedMediaType
from ledger.http.problem_docs import problem_response

__all__ = [
    "PARSERS_MAX",
    "REPORT_TYPES",
    "STATEMENT_TYPES",
    "UPLOAD_RESPONSES",
    "Upload",
    "in_memory",
    "received_file",
    "run_parser",
]

SPOOL_BYTES_MAX = 1024 * 1024  # bodies above this go to a temporary file on disk
PARSERS_MAX = 2  # files parsed at once per process (threads); more uploads wait
CHUNK_BYTES = 1024 * 1024
PART_HEADER_BYTES_MAX = 8 * 1024
PARTS_MAX = 10
REPORT_TYPES = (  # what browsers and curl call a .csv or .txt file
    "text/csv",
    "text/plain",
    "text/tab-separated-values",
    "text/comma-separated-values",
    "text/x-csv",
    "application/csv",
    "application/x-csv",
    "application/vnd.ms-excel",
)
STATEMENT_TYPES = ("application/xml", "text/xml", "application/zip", "application/x-zip-compressed")
_ANY_FILE = ("application/octet-stream", "application/x-www-form-urlencoded", "")
_PARSERS = ThreadPoolExecutor(max_workers=PARSERS_MAX, thread_name_prefix="kontor-upload")

P = ParamSpec("P")
T = TypeVar("T")


UPLOAD_RESPONSES: dict[int, ResponseSpec] = {
    415: problem_response(
        415, "unsupported_media_type: the body (or its one file part) is not of a type this route reads"
    )
}


@dataclass(frozen=True)
class Upload:
    """The uploaded file: bytes [start, end) of the spooled body, with their SHA-256 and declared type."""

    spool: IO[bytes]
    start: int
    end: int
    sha256: bytes
    media_type: str
    filename: str | None

    def open(self) -> io.BufferedReader:
        """A fresh reader over the file (seekable); use it in one thread at a time."""
        return io.BufferedReader(_Window(self.spool, self.start, self.end), buffer_size=CHUNK_BYTES)


def in_memory(data: bytes, media_type: str = "text/csv") -> Upload:
    """A file Kontor fetched itself (a report document, at most its download bound) as an Upload."""
    return Upload(io.BytesIO(data), 0, len(data), hashlib.sha256(data).digest(), media_type, None)


async def run_parser(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a parser in the upload thread pool: the event loop keeps serving other requests meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_PARSERS, functools.partial(parse, *args, **kwargs))


@asynccontextmanager
async def received_file(request: Request[Any, Any, Any], *, accepted: tuple[str, ...]) -> AsyncIterator[Upload]:
    """The request's file, spooled; 415 for a body of another type than `accepted`, before anything is read."""
    media_type, params = _media_type(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data":
        _check_type(media_type, accepted)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES_MAX) as spool:
        async for chunk in request.stream():  # the route's body limit is enforced while streaming (413)
            spool.write(chunk)
        yield await run_parser(_locate, spool, media_type, params, accepted)


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = header.partition(";")
    params = {}
    for item in rest.split(";"):
        name, eq, value = item.strip().partition("=")
        if eq:
            params[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), params


def _check_type(media_type: str, accepted: tuple[str, ...]) -> None:
    if media_type not in accepted and media_type not in _ANY_FILE:
        expected = ", ".join(accepted)
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f"{media_type!r} is not read here: send the file as the body ({expected}) "
            "or as the one file part of multipart/form-data",
            [FieldError("Content-Type", f"one of {expected}, application/octet-stream or multipart/form-data")],
        )


def _locate(spool: IO[bytes], media_type: str, params: dict[str, str], accepted: tuple[str, ...]) -> Upload:
    spool.seek(0, io.SEEK_END)
    start, end, filename = 0, spool.tell(), None
    if media_type == "multipart/form-data":
        start, end, media_type, filename = _file_part(spool, end, params.get("boundary", ""))
        _check_type(media_type, accepted)
    digest = hashlib.sha256()
    reader = _Window(spool, start, end)
    while chunk := reader.read(CHUNK_BYTES):
        digest.update(chunk)
    return Upload(spool, start, end, digest.digest(), media_type, filename)


def _invalid(message: str) -> Unprocessable:
    return Unprocessable(
        "upload_invalid", f"the multipart upload is not readable: {message}", [FieldError("file", message)]
    )


def _file_part(spool: IO[bytes], size: int, boundary: str) -> tuple[int, int, str, str | None]:
    """The one file part of a multipart/form-data body: (content start, content end, its type, its filename)."""
    if not 1 <= len(boundary) <= 70 or not boundary.isascii():
        raise _invalid("the Content-Type names no boundary (1-70 ASCII characters)")
    delimiter = b"--" + boundary.encode("latin-1")
    marks = [p + 2 for p in _occurrences(spool, b"\r\n" + delimiter, size)]
    spool.seek(0)
    if spool.read(len(delimiter)) == delimiter:
        marks.insert(0, 0)
    parts = []
    for here, following in itertools.pairwise(marks):
        headers, content_start = _part_headers(spool, here + len(delimiter), following)
        parts.append((headers, content_start, following - 2))
    spool.seek(marks[-1] + len(delimiter) if marks else 0)
    if not marks or spool.read(2) != b"--":
        raise _invalid("the body does not end with the closing boundary")
    files = [p for p in parts if "filename" in _media_type("x;" + p[0].get("content-disposition", ""))[1]]
    chosen = files if files or len(parts) != 1 else parts
    if len(chosen) != 1:
        raise _invalid(f"exactly one file part is read, this body has {len(chosen)} (curl -F file=@report.csv)")
    headers, content_start, content_end = chosen[0]
    kind, _ = _media_type(headers.get("content-type", ""))
    filename = _media_type("x;" + headers.get("content-disposition", ""))[1].get("filename")
    return content_start, content_end, kind, filename


def _occurrences(spool: IO[bytes], needle: bytes, size: int) -> list[int]:
    """Offsets of `needle` in the file, read in chunks (a part boundary may straddle two chunks)."""
    found: list[int] = []
    offset, carry = 0, b""
    spool.seek(0)
    while offset < size:
        chunk = spool.read(CHUNK_BYTES)
        if not chunk:
            break
        window = carry + chunk
        base = offset - len(carry)
        at = window.find(needle)
        while at != -1:
            found.append(base + at)
            if len(found) > PARTS_MAX:
                raise _invalid(f"more than {PARTS_MAX} parts")
            at = window.find(needle, at + 1)
        carry = window[-(len(needle) - 1) :]
        offset += len(chunk)
    return found


def _part_headers(spool: IO[bytes], after_delimiter: int, part_end: int) -> tuple[dict[str, str], int]:
    spool.seek(after_delimiter)
    block = spool.read(min(PART_HEADER_BYTES_MAX, max(part_end - after_delimiter, 0)))
    head, sep, _ = block.partition(b"\r\n\r\n")
    if not sep:
        raise _invalid(f"a part's headers are missing or longer than {PART_HEADER_BYTES_MAX} bytes")
    headers = {}
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:  # the first line ends the delimiter line
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, after_delimiter + len(head) + 4


class _Window(io.RawIOBase):
    """Bytes [start, end) of a file as a seekable file of their own (no copy)."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        super().__init__()
        self._file, self._start, self._end, self._pos = file, start, end, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._end - self._start - self._pos)
        if wanted <= 0:
            return 0
        self._file.seek(self._start + self._pos)
        data = self._file.read(wanted)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end - self._start}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos
