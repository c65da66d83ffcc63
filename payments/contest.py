"""Contesting a chargeback: the merchant's evidence goes to Amazon through the Dispute API.

`POST .../disputes/{id}/evidence` uploads each file (`POST /v2/files`, PDF, PNG or JPEG up to 5 MiB) and then
contests the dispute with every item (`POST /v2/disputes/{disputeId}/contest`, merchantEvidences of Amazon's
evidence types: developer.amazon.com/docs/amazon-pay-api-v2/dispute.html), before the merchant response
deadline. Only after Amazon accepted the contest is the evidence recorded (type, text, file name, size,
SHA-256 and Amazon's fileId: Kontor keeps no copy of the file) and the case marked contested; a retry of the
same request repeats the same calls (idempotency keys `<business>-d<case>-f<n>` / `-c<n>`).

Everything is checked before the first upload: the whole body (types, texts, files by content and size), the
case (open, before its deadline, not contested already unless Amazon asked for more evidence since: 409
`dispute_already_contested`), and Amazon's own state of the dispute, read first (`GET /v2/disputes/{id}`): only an
`ActionRequired` dispute can be contested (409 `dispute_not_contestable` otherwise). A refused request sends
nothing to Amazon and records nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.context import Kontor
from ledger.db import transaction_retrying
from ledger.domain import Business
from ledger.errors import Conflict, FieldError, Unprocessable
from payments.amazon.client import AmazonPayError, Evidence
from payments.dispute_outcomes import sync_dispute
from payments.disputes import DisputeOut, EvidenceIn, dispute_row, get_dispute
from payments.refusals import amazon_refused
from payments.runtime import Payments
from payments.settings import load_settings

if TYPE_CHECKING:
    from ledger.db import Connection

__all__ = ["FILE_BYTES_MAX", "contest_dispute"]

FILE_BYTES_MAX = 5 * 1024 * 1024
_MAGIC = {"application/pdf": (b"%PDF-",), "image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",)}
_FILE_TYPES = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}  # Amazon's file `type`


@dataclass(frozen=True, slots=True)
class _File:
    name: str
    content_type: str
    data: bytes


def _files(body: EvidenceIn) -> list[_File | None]:
    """Each item checked whole and its file decoded before anything reaches Amazon; 422 naming the item otherwise
    (a text PostgreSQL cannot store is `text_invalid`, as everywhere: it could not be recorded after the contest)."""
    files: list[_File | None] = []
    for i, item in enumerate(body.evidences):
        path = f"evidences[{i}]"
        if item.text is None and item.file is None:
            raise Unprocessable(
                "evidence_invalid", "an evidence item needs a text or a file", [FieldError(path, "empty")]
            )
        if item.text is not None and "\x00" in item.text:
            raise Unprocessable(
                "text_invalid",
                "an evidence text contains a NUL character (\\u0000)",
                [FieldError(f"{path}.text", "contains a NUL character")],
            )
        if item.file is None:
            files.append(None)
            continue
        try:
            data = base64.b64decode(item.file.data, validate=True)
        except (binascii.Error, ValueError):
            raise Unprocessable(
                "evidence_invalid", "file data is not base64", [FieldError(f"{path}.file.data", "not base64")]
            ) from None
        if len(data) > FILE_BYTES_MAX:
            raise Unprocessable(
                "evidence_invalid", "a file is at most 5 MiB", [FieldError(f"{path}.file.data", f"{len(data)} bytes")]
            )
        if not data.startswith(_MAGIC[item.file.content_type]):
            raise Unprocessable(
                "evidence_invalid",
                f"the file is not a {item.file.content_type}",
                [FieldError(f"{path}.file.content_type", "does not match the file's content")],
            )
        files.append(_File(item.file.name, item.file.content_type, data))
    return files


def _check_contestable(ctx: Kontor, row: Any, dispute_id: int) -> None:
    """409 before anything is sent: the case is closed, its deadline passed, or it was contested already and Amazon
    has not asked for more evidence since (Amazon then answers a second contest InvalidDisputeStatus)."""
    if row["state"] != "open":
        raise Conflict("dispute_resolved", f"dispute {dispute_id} is {row['state']}; evidence is closed")
    if ctx.today() > row["deadline"]:
        raise Conflict(
            "dispute_deadline_passed", f"the response deadline of dispute {dispute_id} was {row['deadline']}"
        )
    if row["contested_at"] is not None and row["amazon_state"] != "ActionRequired":
        raise Conflict(
            "dispute_already_contested",
            f"dispute {dispute_id} was contested at Amazon Pay on {row['contested_at']:%Y-%m-%d} (Amazon's state: "
            f"{row['amazon_state']}); more evidence can be sent only when Amazon asks for it (ActionRequired)",
        )


async def contest_dispute(
    ctx: Kontor, rt: Payments, business: Business, dispute_id: int, body: EvidenceIn
) -> DisputeOut:
    """Send the evidence to Amazon and contest the dispute; 409 when it is resolved or past its deadline."""
    files = _files(body)
    settings = await load_settings(ctx, rt, business)
    async with ctx.pool.acquire() as conn:
        row = await dispute_row(conn, business, dispute_id)
        sent = int(await conn.fetchval(
            "SELECT count(*) FROM dispute_evidence WHERE merchant_id = $1 AND dispute_id = $2",
            business.merchant_id,
            dispute_id,
        ))  # fmt: skip
    _check_contestable(ctx, row, dispute_id)
    creds, prefix = settings.credentials, f"{business.code}-d{dispute_id}"
    try:
        current = await rt.gateway.get_dispute(creds, row["chargeback_id"])  # a read: Amazon's state now
    except AmazonPayError as exc:
        raise amazon_refused(exc, f"reading dispute {row['chargeback_id']}") from exc
    if current.state != "ActionRequired":
        async with ctx.pool.acquire() as conn, conn.transaction():
            await sync_dispute(ctx, conn, business, row["chargeback_id"], current, on=ctx.today())
        raise Conflict(
            "dispute_not_contestable",
            f"Amazon Pay does not ask for evidence on dispute {dispute_id} (its state is {current.state}"
            + (f", {current.reason_code}" if current.reason_code else "")
            + "); nothing was sent",
        )
    try:
        evidences = []
        for n, (item, file) in enumerate(zip(body.evidences, files, strict=True), start=sent + 1):
            file_id = None
            if file is not None:
                file_id = await rt.gateway.upload_file(
                    creds, file.data, file_type=_FILE_TYPES[file.content_type], idempotency_key=f"{prefix}-f{n}"
                )
            evidences.append(Evidence(item.type, item.text, file_id))
        amazon = await rt.gateway.contest_dispute(
            creds, row["chargeback_id"], evidences, idempotency_key=f"{prefix}-c{sent + 1}"
        )
    except AmazonPayError as exc:
        raise amazon_refused(exc, f"the contest of dispute {row['chargeback_id']}") from exc

    async def record(conn: Connection) -> None:
        # the dispute row first, as the IPN path's sync_dispute locks it: a concurrent IPN waits, never deadlocks
        await dispute_row(conn, business, dispute_id, lock=True)
        await conn.executemany(
            "INSERT INTO dispute_evidence (merchant_id, dispute_id, kind, content, file_name, file_type, file_bytes, "
            "file_sha256, file_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    business.merchant_id,
                    dispute_id,
                    ev.evidence_type,
                    ev.text,
                    file.name if file else None,
                    file.content_type if file else None,
                    len(file.data) if file else None,
                    hashlib.sha256(file.data).digest() if file else None,
                    ev.file_id,
                )
                for ev, file in zip(evidences, files, strict=True)
            ],
        )
        await conn.execute(
            "UPDATE disputes SET contested_at = now() WHERE merchant_id = $1 AND dispute_id = $2",
            business.merchant_id,
            dispute_id,
        )
        await sync_dispute(ctx, conn, business, row["chargeback_id"], amazon, on=ctx.today())

    await transaction_retrying(ctx.pool, ctx.settings.db_retry_attempts_max, record)
    return await get_dispute(ctx, business, dispute_id)
