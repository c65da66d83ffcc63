"""R6: schemathesis against the service's own OpenAPI document, every operation.

Passes when no generated request, valid or deliberately invalid, gets a server error, an undocumented status, a
response that contradicts its schema, or a wrong content type. The fast variant runs a few examples per operation
and generation mode; the slow one runs 100. Requests go over real HTTP to the test service (served by uvicorn on
the test loop) from a worker thread, with an admin key of a merchant of its own (the operator key for onboarding
and base rates).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from ledger.http.auth import OPERATOR
from tests.conftest import OPERATOR_KEY, Tenant, make_tenant

PUBLIC_IPN = "/v1/amazon-pay/ipn"


def operator_routes(app: Litestar) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get("roles") == OPERATOR:
                for method in handler.http_methods:
                    out.add((re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method))
    return out


def summary(failure: BaseException) -> str:
    """The lines of a schemathesis report that say what failed and how to reproduce it."""
    keep = ("- ST", "Received:", "Documented:", "Invalid component", "curl ", "`{")
    lines = [line.strip() for line in str(failure).splitlines() if line.strip().startswith(keep)]
    return "\n    ".join(lines[:12])[:2000] or repr(failure)[:2000]


@dataclass
class Fuzz:
    """One schemathesis run over every operation, in a worker thread, against the served app."""

    base_url: str
    tenant: Tenant
    operator: set[tuple[str, str]]
    examples: int
    failures: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def skip(self, case: schemathesis.Case) -> bool:
        # revoking a key this test runs with would turn every later call into a 401
        own = {k.split("_")[2] for k in (self.tenant.admin_key, self.tenant.poster_key, self.tenant.accountant_key)}
        return case.path == "/v1/api-keys/{key_id}" and str((case.path_parameters or {}).get("key_id")) in own

    def run(self, doc: dict[str, Any]) -> Fuzz:
        with requests.Session() as session:
            for result in schemathesis.openapi.from_dict(doc).get_all_operations():
                op = result.ok()
                if op.path == PUBLIC_IPN:
                    continue  # authenticated by its SNS signature: tests/e2e/test_ipn.py refuses forged ones
                key = OPERATOR_KEY if (op.path, op.method.upper()) in self.operator else self.tenant.admin_key
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    label = f"{op.method.upper()} {op.path} ({mode.value})"
                    try:
                        self.counts[label] = self.operation(op, mode, key, session)
                    except Unsatisfiable:
                        assert mode is GenerationMode.NEGATIVE, label  # no inputs: no invalid request to make
                    except (Exception, BaseExceptionGroup) as failure:  # all failures are reported together
                        self.failures.append(f"{label}: {summary(failure)}")
        return self

    def operation(self, op: Any, mode: GenerationMode, key: str, session: requests.Session) -> int:
        """Run one operation in one generation mode; returns how many requests were sent, raises what failed."""
        sent = 0

        @settings(
            max_examples=self.examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            nonlocal sent
            if self.skip(case):
                return
            sent += 1
            # the generated bearer token is replaced by a real key, unless the invalid request is the missing key
            keyless = mode is GenerationMode.NEGATIVE and "authorization" not in {h.lower() for h in case.headers or {}}
            headers = {} if keyless else {"Authorization": f"Bearer {key}"}
            response = case.call(base_url=self.base_url, session=session, headers=headers)
            # positive_data_acceptance is left out: domain rules (an entry must balance, an order must exist, a
            # currency must be ISO 4217) are not JSON Schema, so schema-valid requests are rightly refused with 4xx
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        check()
        return sent


async def run_fuzz(app: Litestar, app_url: str, app_client: httpx.AsyncClient, examples: int) -> Fuzz:
    tenant = await make_tenant(app_client)
    doc = (await app_client.get("/schema/openapi.json")).json()
    return await asyncio.to_thread(Fuzz(app_url, tenant, operator_routes(app), examples).run, doc)


async def test_every_operation_answers_as_documented(
    app: Litestar, app_url: str, app_client: httpx.AsyncClient
) -> None:
    outcome = await run_fuzz(app, app_url, app_client, examples=8)
    assert not outcome.failures, "\n".join(outcome.failures)
    assert len(outcome.counts) > 80  # every operation, both modes (some have no negative variant)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_every_operation_answers_as_documented_100_examples(
    app: Litestar, app_url: str, app_client: httpx.AsyncClient
) -> None:
    outcome = await run_fuzz(app, app_url, app_client, examples=100)
    print(f"R6: {len(outcome.counts)} operation/mode pairs, {sum(outcome.counts.values())} requests")
    assert not outcome.failures, "\n".join(outcome.failures)
