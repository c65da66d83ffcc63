"""Settlement reports fetched through Amazon's Reporting API and imported exactly once each.

The job `amazon-pay-reports` (every KONTOR_AMAZON_PAY_REPORT_INTERVAL_S) lists, per connected business code, the
settlement reports Amazon generated since the last one it saw (`GET /v2/reports`, reportType
_GET_FLAT_FILE_OFFAMAZONPAYMENTS_SETTLEMENT_DATA_, at most 90 days back: developer.amazon.com/docs/amazon-pay-api-v2/
reports.html), records each once (`amazon_reports`), then downloads its document (`GET /v2/report-documents/{id}`,
a pre-signed URL valid 30 seconds) and imports it through the same settlement import as an upload (the v2
document is the v1 flat file). A report is claimed with a lease, so several instances import it once; one that
fails is retried with backoff (Amazon out of reach) or marked failed with the reason (the file is refused: its
problem is shown in the settlement list); either way the others go on. After an import, the settlement's payout
gets Amazon's disbursement reference (`GET /v2/disbursements`), which the bank statement names.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from msgspec import Struct

from ledger.context import Kontor
from ledger.domain import Business
from ledger.errors import KontorError
from ledger.tenancy import get_business
from payments.amazon.client import AmazonPayError, Credentials, Report
from payments.refusals import amazon_refused, gateway_unavailable
from payments.runtime import Payments
from payments.settings import SETTLEMENT_REPORT, load_settings, mark_proven
from payments.settlement import SETTLEMENT_BYTES_MAX, import_settlement
from payments.uploads import in_memory

__all__ = [
    "ATTEMPTS_MAX",
    "LOOKBACK_DAYS",
    "SettlementList",
    "fetch_reports",
    "import_due_reports",
    "list_settlements",
]

log = logging.getLogger("kontor.amazon_pay.reports")
LOOKBACK_DAYS = 90  # Amazon keeps reports this long
ATTEMPTS_MAX = 10
LEASE_S = 600
BUSINESSES_PER_RUN_MAX = 1000
REPORTS_PER_RUN_MAX = 50


async def fetch_reports(ctx: Kontor, rt: Payments, only: Business | None = None) -> int:
    """List new settlement reports of every connected business code (or of `only`); returns how many were new.
    For `only` (the fetch route) a failure is the caller's answer: 409 when the business code is not connected or
    Amazon refuses its credentials, 502 when Amazon is out of reach; the job logs it and goes on."""
    rows = await ctx.pool.fetch(
        "SELECT s.merchant_id, s.business, (SELECT max(r.created_time) FROM amazon_reports r "
        "  WHERE r.merchant_id = s.merchant_id AND r.business = s.business) AS seen "
        "FROM amazon_pay_settings s WHERE s.access IN ('keys', 'delegated') "
        "AND ($2::bigint IS NULL OR (s.merchant_id, s.business) = ($2, $3)) ORDER BY s.merchant_id, s.business LIMIT $1",
        BUSINESSES_PER_RUN_MAX,
        only.merchant_id if only else None,
        only.code if only else None,
    )
    new = 0
    for row in rows:
        try:
            business = await get_business(ctx, row["merchant_id"], row["business"])
            creds = (await load_settings(ctx, rt, business)).credentials
            since = row["seen"] - timedelta(days=1) if row["seen"] else ctx.clock() - timedelta(days=LOOKBACK_DAYS)
            reports = await rt.gateway.list_reports(creds, report_types=[SETTLEMENT_REPORT], created_since=since)
        except (AmazonPayError, KontorError) as exc:
            if only is not None:
                raise _problem(exc, "listing the settlement reports") from exc
            log.warning("settlement reports not listed", extra={"business": row["business"], "error": str(exc)})
            continue
        new += await _record(ctx, business, [r for r in reports if r.processing_status == "COMPLETED"])
    if only is not None and not rows:
        await load_settings(ctx, rt, only)  # 409: not configured (or Checkout v1's settings)
    return new


def _problem(exc: AmazonPayError | KontorError, what: str) -> KontorError:
    if isinstance(exc, KontorError):
        return exc
    return amazon_refused(exc, what)


async def _record(ctx: Kontor, business: Business, reports: list[Report]) -> int:
    new = 0
    for report in reports:
        if not report.report_document_id:
            continue
        inserted = await ctx.pool.fetchval(
            "INSERT INTO amazon_reports (merchant_id, business, report_id, report_type, report_document_id, "
            "created_time, period_start, period_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING RETURNING true",
            business.merchant_id,
            business.code,
            report.report_id[:200],
            report.report_type[:200],
            report.report_document_id[:400],
            report.created_time,
            report.start_time,
            report.end_time,
        )
        new += bool(inserted)
    return new


async def _claim(ctx: Kontor, only: Business | None) -> list[Any]:
    return list(
        await ctx.pool.fetch(
            "UPDATE amazon_reports r SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $1) "
            "FROM (SELECT merchant_id, business, report_id FROM amazon_reports WHERE state = 'new' "
            "  AND next_attempt_at <= now() AND ($3::bigint IS NULL OR (merchant_id, business) = ($3, $4)) "
            "  ORDER BY created_time NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED) due "
            "WHERE r.merchant_id = due.merchant_id AND r.business = due.business AND r.report_id = due.report_id "
            "RETURNING r.merchant_id, r.business, r.report_id, r.report_document_id, r.attempts, r.period_start, "
            "r.period_end",
            LEASE_S,
            REPORTS_PER_RUN_MAX,
            only.merchant_id if only else None,
            only.code if only else None,
        )
    )


async def import_due_reports(ctx: Kontor, rt: Payments, only: Business | None = None) -> int:
    """Download and import every report due (oldest first; of `only`'s business code); returns how many. For
    `only`, Amazon out of reach for a report is a 502 once the others are done (the report is retried)."""
    imported, unreachable = 0, None
    for row in await _claim(ctx, only):
        business = await get_business(ctx, row["merchant_id"], row["business"])
        try:
            settings = await load_settings(ctx, rt, business)
            out = await _import(ctx, rt, business, settings.credentials, row)
        except AmazonPayError as exc:
            await _retry_or_fail(ctx, row, f"{exc.reason_code}: {exc.message}", give_up=exc.reachable)
            unreachable = unreachable or (None if exc.reachable else exc)
            continue
        except KontorError as exc:  # the file itself is refused (422/409): retrying cannot help
            await _retry_or_fail(ctx, row, f"{exc.code}: {exc.detail}", give_up=True)
            continue
        except Exception as exc:  # anything else: recorded, retried with backoff, and the others go on
            log.exception("settlement report import failed", extra={"report_id": row["report_id"]})
            await _retry_or_fail(ctx, row, f"internal error: {type(exc).__name__}", give_up=False)
            continue
        await ctx.pool.execute(
            "UPDATE amazon_reports SET state = 'imported', settlement_id = $4, imported_at = now(), last_error = NULL "
            "WHERE merchant_id = $1 AND business = $2 AND report_id = $3",
            row["merchant_id"],
            row["business"],
            row["report_id"],
            out,
        )
        imported += 1
    if only is not None and unreachable is not None:
        raise gateway_unavailable(unreachable)
    return imported


async def _import(ctx: Kontor, rt: Payments, business: Business, creds: Credentials, row: Any) -> str:
    url = await rt.gateway.get_report_document_url(creds, row["report_document_id"])
    body = await rt.gateway.download_report(url, bytes_max=SETTLEMENT_BYTES_MAX)
    out, _ = await import_settlement(ctx, business, in_memory(body), report_id=row["report_id"])
    # fetched with the business code's credentials, its SellerId the connected account: they act for it
    await mark_proven(ctx, business, out.seller_id)
    await _disbursements(ctx, rt, business, creds, out.settlement_id, row["period_start"], row["period_end"])
    log.info("settlement report imported", extra={"report_id": row["report_id"], "settlement": out.settlement_id})
    return out.settlement_id


async def _disbursements(
    ctx: Kontor,
    rt: Payments,
    business: Business,
    creds: Credentials,
    settlement_id: str,
    start: datetime | None,
    end: datetime | None,
) -> None:
    """Amazon's disbursement reference on the settlement's payouts (a courtesy: the bank match works without)."""
    now = ctx.clock()
    try:
        found = await rt.gateway.list_disbursements(
            creds, start=(start or now - timedelta(days=30)) - timedelta(days=1), end=(end or now) + timedelta(days=7)
        )
    except AmazonPayError as exc:
        log.warning("disbursements not listed", extra={"settlement": settlement_id, "code": exc.reason_code})
        return
    for disbursement in found:
        if disbursement.settlement_id == settlement_id:
            await ctx.pool.execute(
                "UPDATE payouts SET disbursement_reference = $4 WHERE merchant_id = $1 AND business = $2 "
                "AND settlement_id = $3 AND amount_minor > 0",
                business.merchant_id,
                business.code,
                settlement_id,
                disbursement.amazon_disbursement_reference_id[:200],
            )


async def _retry_or_fail(ctx: Kontor, row: Any, why: str, *, give_up: bool) -> None:
    failed = give_up or row["attempts"] >= ATTEMPTS_MAX
    delay = timedelta(seconds=min(6 * 3600, 60 * 2 ** int(row["attempts"])))
    await ctx.pool.execute(
        "UPDATE amazon_reports SET state = CASE WHEN $4 THEN 'failed' ELSE 'new' END, last_error = $5, "
        "next_attempt_at = now() + $6 WHERE merchant_id = $1 AND business = $2 AND report_id = $3",
        row["merchant_id"],
        row["business"],
        row["report_id"],
        failed,
        why[:1000],
        delay,
    )
    log.warning("settlement report not imported", extra={"report_id": row["report_id"], "reason": why})


class SettlementItem(Struct, kw_only=True):
    settlement_id: str
    source: str  # upload | reporting_api
    report_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    imported_at: datetime
    rows: int
    exception_count: int


class ReportItem(Struct, kw_only=True):
    report_id: str
    state: str  # new (to be imported), imported, failed (see last_error)
    settlement_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    attempts: int
    last_error: str | None
    seen_at: datetime


class SettlementList(Struct, kw_only=True):
    settlements: list[SettlementItem]  # newest first
    reports: list[ReportItem]  # reports listed by Amazon and not imported (yet): new or failed


async def list_settlements(ctx: Kontor, business: Business, limit: int) -> SettlementList:
    """The business code's settlements (newest first) and the Reporting API's reports still to import."""
    key = (business.merchant_id, business.code)
    async with ctx.reports_pool.acquire() as conn:
        settled = await conn.fetch(
            "SELECT settlement_id, report_id, period_start, period_end, imported_at, summary FROM settlements "
            "WHERE merchant_id = $1 AND business = $2 ORDER BY imported_at DESC, settlement_id LIMIT $3",
            *key,
            limit,
        )
        pending = await conn.fetch(
            "SELECT report_id, state, settlement_id, period_start, period_end, attempts, last_error, seen_at "
            "FROM amazon_reports WHERE merchant_id = $1 AND business = $2 AND state <> 'imported' "
            "ORDER BY created_time NULLS FIRST, report_id LIMIT $3",
            *key,
            limit,
        )
    return SettlementList(
        settlements=[
            SettlementItem(
                settlement_id=r["settlement_id"],
                source="upload" if r["report_id"] is None else "reporting_api",
                report_id=r["report_id"],
                period_start=r["period_start"],
                period_end=r["period_end"],
                imported_at=r["imported_at"],
                rows=int(r["summary"].get("rows", 0)),
                exception_count=int(r["summary"].get("exception_count", 0)),
            )
            for r in settled
        ],
        reports=[ReportItem(**dict(r)) for r in pending],
    )
