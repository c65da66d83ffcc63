"""Settings of the dunning plugin (KONTOR_DUNNING_*), read when the service starts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DunningSettings"]


@dataclass(frozen=True)
class DunningSettings:
    # when the daily runs start (crontab, UTC); every business code with a dunning policy is run
    dunning_cron: str = "0 6 * * *"
    # how often instances look for a day's run that is due but not done (missed, or its runner died)
    dunning_resume_interval_s: float = 300.0
    dunning_chunk_size: int = 500  # customers per transaction
