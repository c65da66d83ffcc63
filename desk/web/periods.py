"""The periods page: month closing (a form with a reason) and the G/L report per month with its download."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect

from desk.sheets import Cell
from desk.web.common import (
    checked_month,
    form_reason,
    page_url,
    read_form,
    say,
)
from desk.webkit import HEADERS, check_csrf, open_page
from ledger import periods as ledger_periods
from ledger import reports
from ledger.errors import BadRequest
from ledger.glexport import FILE_FORMATS, gl_file
from ledger.http.deps import BusinessCodePath as Code

__all__ = ["close_month", "gl_download", "gl_report", "periods"]


# --- periods -------------------------------------------------------------------------------------------
@get("/{code:int}/periods")
async def periods(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    closed = list(reversed(await ledger_periods.list_periods(v.ctx, v.business)))
    sheet = v.sheet(
        "periods",
        "",
        [("Month", "text"), ("Closed at", "text"), ("Closed by", "text"), ("G/L report", "text")],
        "No month has been closed yet.",
    )
    for p in closed:
        sheet.add(
            Cell(p.period, href=page_url(v, f"periods/{p.period}")),
            v.fmt.moment(p.closed_at),
            p.closed_by,
            Cell("CSV · XLSX · DATEV", href=page_url(v, f"periods/{p.period}")),
            period=p.period,
        )
    today = v.ctx.today()
    last = today.replace(day=1) - timedelta(days=1)
    closed_through = await v.ctx.pool.fetchval(
        "SELECT closed_through FROM businesses WHERE merchant_id = $1 AND business = $2",
        v.business.merchant_id,
        v.business.code,
    )
    first = (closed_through + timedelta(days=1)) if closed_through else last.replace(day=1)
    first = max(first, date(last.year - 2, 1, 1))
    closable = []
    m = last.replace(day=1)
    while m >= first.replace(day=1):
        closable.append(f"{m:%Y-%m}")
        m = (m - timedelta(days=1)).replace(day=1)
    return v.respond("periods.html", "periods", [sheet], closable=closable)


@post("/{code:int}/periods/close", status_code=303)
async def close_month(request: Request[Any, Any, Any], code: Code) -> Response[Any]:
    v = await open_page(request, code)
    form = await read_form(request)
    check_csrf(request, v.viewer, form.get("csrf", ""))
    reason = form_reason(v, form)
    period = checked_month(v, form.get("period", ""))
    closed_by = f"{v.viewer.key_name} (key {v.viewer.key_id}, web): {reason}"
    with v.acting():
        await ledger_periods.close_period(v.ctx, v.business, period, closed_by, reason=reason)
    return Redirect(page_url(v, "periods"), status_code=303, headers=HEADERS)


@get("/{code:int}/periods/{period:str}")
async def gl_report(request: Request[Any, Any, Any], code: Code, period: FromPath[str]) -> Response[Any]:
    v = await open_page(request, code)
    report = await reports.gl_report(v.ctx, v.business, checked_month(v, period))
    return v.respond("gl_report.html", "periods", [], report=report)


@get("/{code:int}/periods/{period:str}/gl-report")
async def gl_download(
    request: Request[Any, Any, Any],
    code: Code,
    period: FromPath[str],
    file_format: Annotated[str, QueryParameter(name="format")] = "csv",
) -> Response[Any]:
    v = await open_page(request, code)
    if file_format not in FILE_FORMATS:
        raise BadRequest("format_unknown", say(v, "Format: “{value}” is not one of {formats}.",
                       value=file_format[:20], formats=", ".join(FILE_FORMATS)))  # fmt: skip
    file = await gl_file(v.ctx, v.business, checked_month(v, period), file_format, created=v.ctx.clock())
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{file.name}"'}
    return Response(file.body, media_type=file.media_type, encoding=file.charset, headers=headers)
