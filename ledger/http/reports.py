"""Report and period routes: trial balance, income statement, balance sheet, month closing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Response, Router, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from ledger import journal, reports
from ledger.glexport import gl_csv, gl_xlsx
from ledger.http.auth import CLOSE, READ
from ledger.http.deps import BusinessCodePath, CallDep
from ledger.http.problems import also_files
from ledger.schemas import (
    BalanceSheetOut,
    GLReportOut,
    IncomeStatementOut,
    PeriodCloseOut,
    PeriodOut,
    TrialBalanceOut,
)

__all__ = ["router"]

PeriodPath = Annotated[str, PathParameter(pattern=r"^[0-9]{4}-[0-9]{2}$", description="YYYY-MM")]
AsOf = Annotated[date | None, QueryParameter(description="Effective date (inclusive)")]
Code = BusinessCodePath


@get("/reports/trial-balance", opt={"roles": READ}, operation_id="getTrialBalance", tags=["reports"])
async def trial_balance(business_code: Code, call: CallDep, as_of: AsOf = None) -> TrialBalanceOut:
    return await reports.trial_balance(call.ctx, await call.business(business_code), as_of=as_of)


@get("/reports/income-statement", opt={"roles": READ}, operation_id="getIncomeStatement", tags=["reports"])
async def income_statement(
    business_code: Code,
    call: CallDep,
    from_date: Annotated[date, QueryParameter(name="from")],
    to_date: Annotated[date, QueryParameter(name="to")],
) -> IncomeStatementOut:
    business = await call.business(business_code)
    return await reports.income_statement(call.ctx, business, from_date=from_date, to_date=to_date)


@get("/reports/balance-sheet", opt={"roles": READ}, operation_id="getBalanceSheet", tags=["reports"])
async def balance_sheet(business_code: Code, call: CallDep, as_of: AsOf = None) -> BalanceSheetOut:
    return await reports.balance_sheet(call.ctx, await call.business(business_code), as_of=as_of or call.ctx.today())


@get("/periods", opt={"roles": READ}, operation_id="listClosedPeriods", tags=["periods"])
async def list_periods(business_code: Code, call: CallDep) -> list[PeriodOut]:
    return await journal.list_periods(call.ctx, await call.business(business_code))


@post(
    "/periods/{period:str}/close",
    opt={"roles": CLOSE},
    operation_id="closePeriod",
    tags=["periods"],
    status_code=200,
    summary="Close a month that is over, and every earlier month",
)
async def close_period(business_code: Code, period: PeriodPath, call: CallDep) -> PeriodCloseOut:
    business = await call.business(business_code)
    return await journal.close_period(call.ctx, business, period, f"api-key:{call.principal.key_id}")


GL_MEDIA = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@get(
    "/periods/{period:str}/gl-report",
    opt={"roles": READ},
    operation_id="getGLReport",
    tags=["periods"],
    summary="The month-end G/L report: opening, movements and closing per account, country and tax code",
    responses={
        200: ResponseSpec(GLReportOut, description="JSON, or the file (?format=csv|xlsx)", generate_examples=False)
    },
    operation_class=also_files(*GL_MEDIA.values()),
)
async def gl_report(
    business_code: Code,
    period: PeriodPath,
    call: CallDep,
    format: Annotated[str, QueryParameter(pattern="^(json|csv|xlsx)$")] = "json",
) -> Response[Any]:
    report = await reports.gl_report(call.ctx, await call.business(business_code), period)
    if format == "json":
        return Response(report)
    body: str | bytes = gl_csv(report) if format == "csv" else gl_xlsx(report)
    name = f"gl-{report.business}-{report.period}.{format}"
    return Response(
        body, media_type=GL_MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[trial_balance, income_statement, balance_sheet, list_periods, close_period, gl_report],
)
