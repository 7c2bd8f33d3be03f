"""What every use case works with: settings, the store, the day cache, the writer, the feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from depot.config import Settings
from depot.service.days import Days
from depot.service.events import Feed
from depot.service.rollforward import Writer
from depot.storage.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    days: Days
    writer: Writer
    feed: Feed

    def today(self) -> str:
        return datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()
