"""The simulated Reporting API routes: Get Reports, Get Report, Create Report, Get Report Document, Get Disbursements.

Why separate from `sim_api.py`: query parsing and paging are their own small world, and the module budget.

Rules (developer.amazon.com/docs/amazon-pay-api-v2/reports.html, amazon-pay-reports/*):
- GET /reports: reportTypes, processingStatuses (comma lists), createdSince (default and floor: now - 90 days),
  createdUntil (default now), pageSize 1-100 (default 10), nextToken - which must be sent alone (400
  InvalidParameterCombination otherwise). Answer `{reports, nextToken?}`, newest first; nextToken only when more.
- GET /disbursements: startTime and endTime required (400 MissingParameterValue), pageSize 1-100 (default 10),
  nextToken; the token may come alone or with the same startTime/endTime/pageSize (the docs list it among the
  parameters without saying; the simulator accepts both). Answer `{disbursements, nextToken?}`.
- Timestamps are accepted in Amazon's three forms (compact, ISO, `2022-08-04T00-00-00Z`); unknown parameters
  are 400 InvalidParameterValue.
- GET /report-documents/{id}: `{reportDocumentId, url, compressionAlgorithm: "N/A"}`; the URL is unsigned and
  valid 30 seconds.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger.money import format_amount
from ledger.textsafe import parse_ascii_int
from payments.amazon.objects import parse_timestamp
from payments.amazon.sim_api import Ctx, route
from payments.amazon.sim_bodies import ReportBody, decode
from payments.amazon.sim_model import SimError
from payments.amazon.sim_reports import REPORT_RETENTION, Books, SimReport, document_url, request_report
from payments.amazon.sim_views import iso_ms, stamp

__all__ = ["report_json"]

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 100
_REPORT_PARAMS = {"reportTypes", "processingStatuses", "createdSince", "createdUntil", "pageSize", "nextToken"}
_DISBURSEMENT_PARAMS = {"startTime", "endTime", "pageSize", "nextToken"}


def report_json(report: SimReport) -> dict[str, Any]:
    return {
        "reportId": report.report_id,
        "reportType": report.report_type,
        "startTime": stamp(report.start),
        "endTime": stamp(report.end),
        "createdTime": stamp(report.created_at),
        "processingStatus": report.status,
        "processingStartTime": stamp(report.created_at),
        "processingEndTime": stamp(report.created_at),
        "reportDocumentId": report.document_id,
    }


def _params(query: Sequence[tuple[str, str]], allowed: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in query:
        if name not in allowed:
            raise SimError(400, "InvalidParameterValue", f"unknown query parameter {name}")
        if name in found:
            raise SimError(400, "InvalidParameterValue", f"{name} is given twice")
        found[name] = value
    return found


def _time(params: dict[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise SimError(400, "InvalidParameterValue", f"{name} is not a timestamp such as 20221114T074550Z") from None


def _page_size(params: dict[str, str]) -> int:
    value = parse_ascii_int(params.get("pageSize", str(PAGE_SIZE_DEFAULT)), length_max=4)
    if value is None or not 1 <= value <= PAGE_SIZE_MAX:
        raise SimError(400, "InvalidParameterValue", f"pageSize must be 1-{PAGE_SIZE_MAX}")
    return value


def _token(params: dict[str, str], offset: int) -> str:
    state = {"q": {k: v for k, v in params.items() if k != "nextToken"}, "o": offset}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _resume(token: str) -> tuple[dict[str, str], int]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        query, offset = state["q"], state["o"]
        if isinstance(query, dict) and isinstance(offset, int) and offset >= 0:
            return {str(k): str(v) for k, v in query.items()}, offset
    except (ValueError, KeyError, TypeError):
        pass
    raise SimError(400, "InvalidParameterValue", "nextToken is not a token this API issued")


def _books(ctx: Ctx) -> Books:
    return ctx.host.books[ctx.merchant.merchant_id]


@route("GET", "/reports")
def list_reports(ctx: Ctx) -> tuple[int, Any]:
    params, offset = _params(ctx.query, _REPORT_PARAMS), 0
    if "nextToken" in params:
        if len(params) > 1:
            raise SimError(400, "InvalidParameterCombination", "nextToken must be sent alone")
        params, offset = _resume(params["nextToken"])
    floor = ctx.now - REPORT_RETENTION
    since = max(_time(params, "createdSince") or floor, floor)
    until = _time(params, "createdUntil") or ctx.now
    types = {t for t in params.get("reportTypes", "").split(",") if t}
    statuses = {s for s in params.get("processingStatuses", "").split(",") if s}
    size = _page_size(params)
    matching = [
        r
        for r in reversed(_books(ctx).reports)
        if since <= r.created_at <= until
        and (not types or r.report_type in types)
        and (not statuses or r.status in statuses)
    ]
    answer: dict[str, Any] = {"reports": [report_json(r) for r in matching[offset : offset + size]]}
    if offset + size < len(matching):
        answer["nextToken"] = _token(params, offset + size)
    return 200, answer


@route("GET", "/reports/{id}")
def get_report(ctx: Ctx) -> tuple[int, Any]:
    for report in _books(ctx).reports:
        if report.report_id == ctx.params[0]:
            return 200, report_json(report)
    raise SimError(404, "ResourceNotFound", f"report {ctx.params[0]} does not exist")


@route("POST", "/reports")
def create_report(ctx: Ctx) -> tuple[int, Any]:
    body = decode(ctx.body, ReportBody)
    times = {"startTime": body.startTime, "endTime": body.endTime}
    start, end = _time(times, "startTime"), _time(times, "endTime")
    if start is None or end is None:  # both are required fields of ReportBody; kept for the type checker
        raise SimError(400, "MissingParameterValue", "startTime and endTime are required")
    report = request_report(ctx.merchant, _books(ctx), body.reportType, start, end, ctx.now)
    return 201, {"reportId": report.report_id}


@route("GET", "/report-documents/{id}")
def get_report_document(ctx: Ctx) -> tuple[int, Any]:
    url = document_url(_books(ctx), ctx.params[0], ctx.base_url, ctx.now)
    return 200, {"reportDocumentId": ctx.params[0], "url": url, "compressionAlgorithm": "N/A"}


@route("GET", "/disbursements")
def list_disbursements(ctx: Ctx) -> tuple[int, Any]:
    params, offset = _params(ctx.query, _DISBURSEMENT_PARAMS), 0
    if "nextToken" in params:
        resumed, offset = _resume(params.pop("nextToken"))
        if params and params != resumed:
            raise SimError(400, "InvalidParameterCombination", "nextToken belongs to other parameters")
        params = resumed
    start, end = _time(params, "startTime"), _time(params, "endTime")
    if start is None or end is None:
        raise SimError(400, "MissingParameterValue", "startTime and endTime are required")
    size = _page_size(params)
    matching = [p for p in _books(ctx).payouts if start <= p.at <= end]
    page = [
        {
            "sellerId": ctx.merchant.merchant_id,
            "settlementId": p.settlement_id,
            "amazonDisbursementReferenceId": p.reference_id,
            "amount": format_amount(p.amount, p.currency),
            "currencyCode": p.currency,
            "transactionTime": iso_ms(p.at),
        }
        for p in matching[offset : offset + size]
    ]
    answer: dict[str, Any] = {"disbursements": page}
    if offset + size < len(matching):
        answer["nextToken"] = _token(params, offset + size)
    return 200, answer
