"""What the payments use cases need at run time besides the ledger context: the Amazon Pay client, the SNS
verifier, the plugin's settings, Kontor's own provider key, and a bounded set of background tasks.

Background tasks (an IPN applied right after its 200) are bounded twice: at most `background_tasks_max` exist
(queued or running; beyond that spawn refuses and the scheduled job picks the work up), and at most
`background_concurrency` run at once (each holds pooled connections and Amazon calls while it runs). Every task
is kept until it ends; stopping the plugin refuses new ones and waits for those left.

Built once per process by the plugin (payments/plugin.py) and passed to the use cases; nothing here is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from payments.amazon.client import AmazonPayClient, Credentials
from payments.amazon.sns import SnsVerifier
from payments.config import PaymentsSettings

__all__ = ["CREDENTIALS_CACHED_MAX", "BackgroundTasks", "Payments", "ProviderKey"]

log = logging.getLogger("kontor.payments")
CREDENTIALS_CACHED_MAX = 1024  # parsed private keys (parsing one costs milliseconds)


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """Kontor's own key pair as an Amazon Pay solution provider (signs calls for delegated merchants)."""

    public_key_id: str
    private_key: Any  # rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"ProviderKey(public_key_id={self.public_key_id!r})"


class BackgroundTasks:
    """Work run after a response: at most `limit` tasks exist, at most `concurrency` of them run at once."""

    def __init__(self, *, limit: int, concurrency: int) -> None:
        if limit < 1 or concurrency < 1:
            raise ValueError("background tasks need a limit and a concurrency of at least 1")
        self.limit = limit
        self.tasks: set[asyncio.Task[None]] = set()
        self._running = asyncio.Semaphore(concurrency)
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run `work` in the background; False (and `work` closed, never run) when `limit` tasks exist or the
        plugin is stopping: whatever the work was for is then left to the scheduled job."""
        if self._closed or len(self.tasks) >= self.limit:
            work.close()
            log.warning("background tasks full or stopping: left to the job", extra={"tasks": len(self.tasks)})
            return False
        task = asyncio.get_running_loop().create_task(self._run(work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _run(self, work: Coroutine[Any, Any, Any]) -> None:
        async with self._running:
            try:
                await work
            except Exception:  # the work records its own failures; this is a defect: logged, never lost
                log.exception("background task failed")

    async def aclose(self) -> None:
        """Refuse new tasks and wait for those left."""
        self._closed = True
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass
class Payments:
    gateway: AmazonPayClient
    sns: SnsVerifier
    settings: PaymentsSettings
    provider: ProviderKey | None = None
    background: BackgroundTasks = field(default_factory=lambda: BackgroundTasks(limit=256, concurrency=8))
    credentials: OrderedDict[tuple[int, int, str], Credentials] = field(default_factory=OrderedDict)

    def cached_credentials(self, key: tuple[int, int, str]) -> Credentials | None:
        found = self.credentials.get(key)
        if found is not None:
            self.credentials.move_to_end(key)
        return found

    def cache_credentials(self, key: tuple[int, int, str], credentials: Credentials) -> None:
        self.credentials[key] = credentials
        while len(self.credentials) > CREDENTIALS_CACHED_MAX:
            self.credentials.popitem(last=False)
