"""Report and period routes: trial balance, income statement, balance sheet, month closing."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Response, Router, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from ledger import datev, periods, reports
from ledger.errors import FieldError, Unprocessable
from ledger.glexport import XLSX, GLFile, gl_file
from ledger.http.auth import CLOSE, READ
from ledger.http.deps import BusinessCodePath, CallDep
from ledger.http.problem_docs import also_files
from ledger.schemas import (
    BalanceSheetOut,
    GLReportOut,
    IncomeStatementOut,
    PeriodCloseIn,
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
    return await periods.list_periods(call.ctx, await call.business(business_code))


@post(
    "/periods/{period:str}/close",
    opt={"roles": CLOSE},
    operation_id="closePeriod",
    tags=["periods"],
    status_code=200,
    summary="Close a month that is over, and every earlier month",
)
async def close_period(
    business_code: Code, period: PeriodPath, call: CallDep, data: JSONBody[PeriodCloseIn | None] = None
) -> PeriodCloseOut:
    business = await call.business(business_code)
    reason = data.reason if data is not None else None
    principal = call.principal
    if reason is None and principal.role == "accountant":
        raise Unprocessable(
            "reason_required",
            "an accountant's period close states why (it is kept in the audit trail and in closed_by)",
            [FieldError("reason", "required for accountant keys")],
        )
    # as the web pages write it ("<key name> (key <id>, web): <reason>"), so a period names who closed it
    closed_by = f"{principal.name} (key {principal.key_id}, api)" + (f": {reason}" if reason else "")
    return await periods.close_period(call.ctx, business, period, closed_by, reason=reason)


def _attachment(file: GLFile) -> Response[Any]:
    return Response(
        file.body,
        media_type=file.media_type,
        encoding=file.charset,  # Litestar adds "; charset=<encoding>" to text types
        headers={"Content-Disposition": f'attachment; filename="{file.name}"'},
    )


@get(
    "/periods/{period:str}/gl-report",
    opt={"roles": READ},
    operation_id="getGLReport",
    tags=["periods"],
    summary="The month-end G/L report: opening, movements and closing per account, country and tax code",
    description="`?format=datev` gives the month's DATEV Buchungsstapel (as `/periods/{period}/datev`).",
    responses={
        200: ResponseSpec(
            GLReportOut, description="JSON, or the file (?format=csv|xlsx|datev)", generate_examples=False
        )
    },
    operation_class=also_files("text/csv", XLSX),
)
async def gl_report(
    business_code: Code,
    period: PeriodPath,
    call: CallDep,
    format: Annotated[str, QueryParameter(pattern="^(json|csv|xlsx|datev)$")] = "json",
) -> Response[Any]:
    business = await call.business(business_code)
    if format == "json":
        return Response(await reports.gl_report(call.ctx, business, period))
    return _attachment(await gl_file(call.ctx, business, period, format, created=call.ctx.clock()))


@get(
    "/periods/{period:str}/datev",
    opt={"roles": READ},
    operation_id="getDatevExport",
    tags=["periods"],
    summary="The month's entries as a DATEV EXTF Buchungsstapel (Windows-1252, ';', decimal comma)",
    description="Needs the business code's DATEV settings (409 `datev_settings_missing` without). Taxed lines and "
    "their VAT are one gross row where DATEV's VAT on it is exactly the booked VAT, else key 40 and a VAT row.",
    responses={
        200: ResponseSpec(str, media_type=datev.MEDIA_TYPE, description="EXTF_Buchungsstapel_<code>_<month>.csv")
    },
)
async def datev_export(business_code: Code, period: PeriodPath, call: CallDep) -> Response[Any]:
    business = await call.business(business_code)
    return _attachment(await gl_file(call.ctx, business, period, "datev", created=call.ctx.clock()))


@get("/datev/settings", opt={"roles": READ}, operation_id="getDatevSettings", tags=["periods"])
async def read_datev_settings(business_code: Code, call: CallDep) -> datev.DatevSettingsOut:
    return await datev.get_settings(call.ctx, await call.business(business_code), route=True)


@put(
    "/datev/settings",
    opt={"roles": CLOSE},
    operation_id="putDatevSettings",
    tags=["periods"],
    summary="Consultant and client numbers, fiscal year and account length for the DATEV export",
)
async def write_datev_settings(
    business_code: Code, data: JSONBody[datev.DatevSettingsIn], call: CallDep
) -> datev.DatevSettingsOut:
    return await datev.put_settings(call.ctx, await call.business(business_code), data)


router = Router(
    path="/v1/businesses/{business_code:int}",
    route_handlers=[
        trial_balance,
        income_statement,
        balance_sheet,
        list_periods,
        close_period,
        gl_report,
        datev_export,
        read_datev_settings,
        write_datev_settings,
    ],
)
