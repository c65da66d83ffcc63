"""An outsider sending IPNs with ever new SigningCertURLs makes Kontor fetch at most FETCHES_PER_MINUTE_MAX
certificates a minute (kind: work that outsiders can trigger has a bound). The fetches go to a closed local port:
each fails fast, and failed URLs are remembered, so only new URLs reach the budget."""

from __future__ import annotations

import httpx
import pytest

from payments.amazon.sns import FETCHES_PER_MINUTE_MAX, SnsError, SnsVerifier
from tests.conftest import free_port


async def test_new_certificate_urls_are_fetched_at_most_so_often() -> None:
    async with httpx.AsyncClient() as http:
        verifier = SnsVerifier(trusted_roots=[], http=http, fetch_base=f"http://127.0.0.1:{free_port()}")
        answers = []
        for n in range(FETCHES_PER_MINUTE_MAX + 5):
            with pytest.raises(SnsError) as refused:
                await verifier._certificate(f"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{n}.pem")
            answers.append("too many" in str(refused.value))
        assert answers == [False] * FETCHES_PER_MINUTE_MAX + [True] * 5
        with pytest.raises(SnsError, match="not tried again yet"):  # a failed URL is not fetched again either
            await verifier._certificate("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0.pem")
