"""The simulator's control routes (/sim/...): what a test or a developer does that a buyer, an issuer or
Amazon's back office would do in reality: register sellers, let refunds settle, file chargebacks, arm
declines, move the clock, ask for a settlement report or the balance, replay an IPN."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, QueryParameter

from ledger.money import format_amount, parse_amount
from payments.amazon.sim_state import CHARGEBACK_FEE_MINOR, RESERVE_PERCENT, Seller, SimError
from payments.amazon.sim_xml import chargeback_xml, refund_xml

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from payments.amazon.simulator import AmazonPaySimulator

__all__ = ["control_routes"]

SellerQuery = Annotated[str, QueryParameter(name="seller_id")]


def control_routes(sim: AmazonPaySimulator) -> list[HTTPRouteHandler]:
    def seller(seller_id: str) -> Seller:
        found = sim.sellers.get(seller_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown seller {seller_id}")
        return found

    @post("/sim/sellers", status_code=201)
    async def register(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        sim.register(
            str(data["seller_id"]),
            str(data["mws_auth_token"]),
            decimals=int(data.get("decimals", 2)),
            sandbox=bool(data.get("sandbox", False)),
            reserve_percent=int(data.get("reserve_percent", RESERVE_PERCENT)),
            chargeback_fee_minor=(
                parse_amount(str(data["chargeback_fee"]), "EUR", allow_zero=True)
                if "chargeback_fee" in data
                else CHARGEBACK_FEE_MINOR
            ),
        )
        return {"seller_id": str(data["seller_id"])}

    @post("/sim/refunds/process", status_code=200)
    async def process_refunds(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        s = seller(str(data["seller_id"]))
        changed = s.process_refunds(sim.now())
        for refund in changed:
            await sim.notify(s, "PaymentRefund", "RefundNotification", refund_xml(refund))
        return {"processed": [{"refund_id": r.refund_id, "state": r.state, "reason": r.reason} for r in changed]}

    @post("/sim/chargebacks", status_code=201)
    async def chargeback(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        s = seller(str(data["seller_id"]))
        capture = s.capture(str(data["capture_id"]))
        try:
            chargeback_id, capture = s.chargeback(
                capture.capture_id, parse_amount(str(data["amount"]), capture.currency), sim.now()
            )
        except SimError as exc:
            raise HTTPException(status_code=409, detail=exc.message) from exc
        await sim.notify(
            s,
            "ChargebackDetailedNotification",
            "ChargebackNotification",
            chargeback_xml(chargeback_id, capture, str(data["amount"]), str(data.get("reason", ""))),
        )
        return {"chargeback_id": chargeback_id}

    @post("/sim/orders/state", status_code=200)
    async def order_state(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        s = seller(str(data["seller_id"]))
        try:
            order = s.set_order_state(
                str(data["order_reference_id"]), str(data["state"]), data.get("reason") and str(data["reason"])
            )
        except SimError as exc:
            raise HTTPException(status_code=409, detail=exc.message) from exc
        sim.order_changed(s, order)
        return {"state": order.state}

    @post("/sim/chargebacks/reversals", status_code=200)
    async def reverse_chargeback(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        s = seller(str(data["seller_id"]))
        try:
            s.reverse_chargeback(str(data["chargeback_id"]), sim.now())
        except SimError as exc:
            raise HTTPException(status_code=404, detail=exc.message) from exc
        return {"reversed": str(data["chargeback_id"])}

    @post("/sim/declines", status_code=200)
    async def arm_decline(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        seller(str(data["seller_id"])).armed_declines[str(data["operation"])] = str(data["reason"])
        return {"armed": str(data["operation"])}

    @post("/sim/clock", status_code=200)
    async def advance_clock(data: JSONBody[dict[str, Any]]) -> dict[str, str]:
        sim.clock_offset += timedelta(days=float(data.get("days", 0)))
        return {"now": sim.now().isoformat()}

    @get("/sim/balance")
    async def balance(seller_id: SellerQuery) -> dict[str, str]:
        s = seller(seller_id)
        owed, reserve = sim.owed(s)
        currency = next(iter(s.orders.values())).currency if s.orders else "EUR"
        return {"owed": format_amount(owed, currency), "reserve": format_amount(reserve, currency)}

    @get("/sim/settlement-report", media_type="text/csv")
    async def settlement_report(seller_id: SellerQuery) -> str:
        await sim.idle()
        return sim.settlement_report(seller(seller_id))

    @get("/sim/ipn/sent")
    async def sent() -> list[dict[str, Any]]:
        return [{"body": body.decode(), "headers": headers} for body, headers in sim.sent]

    @post("/sim/ipn/replay", status_code=200)
    async def replay(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        body, headers = sim.sent[int(data["index"])]
        return {"status": await sim.deliver(body, headers)}

    @post("/sim/idle", status_code=200)
    async def idle() -> Response[None]:
        await sim.idle()
        return Response(None, status_code=200)

    return [
        register,
        process_refunds,
        chargeback,
        reverse_chargeback,
        order_state,
        arm_decline,
        advance_clock,
        balance,
        settlement_report,
        sent,
        replay,
        idle,
    ]
