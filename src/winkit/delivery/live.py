"""Live delivery changes for the event streams this replica holds.

Every replica hears every delivery event over NATS (``EventBus.listen``), reads the
record once and hands it to each stream watching that order (or every order, for staff).
A change made on one replica therefore reaches streams held by any other. Streams also
re-read on their own when quiet, so a message missed while NATS was away costs at most a
heartbeat interval, never a view that stays wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

from winkit.core.event_contracts import DeliveryOpened, DeliveryStatusChanged
from winkit.delivery.models import DeliveryRecord
from winkit.delivery.store import DeliveryStore

EVERY_ORDER = None
# A stream this far behind skips ahead: it re-reads the record when its queue drains.
QUEUE_SIZE = 64


class LiveUpdates:
    def __init__(self, store: DeliveryStore) -> None:
        self._store = store
        self._watchers: defaultdict[str | None, set[asyncio.Queue[DeliveryRecord]]] = defaultdict(set)

    async def hear(self, changed: DeliveryOpened | DeliveryStatusChanged) -> None:
        order_id = changed.order_id
        queues = self._watchers.get(order_id, set()) | self._watchers.get(EVERY_ORDER, set())
        if not queues:
            return
        record = await self._store.get(order_id)
        if record is None:
            return
        for queue in queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(record)

    @contextlib.contextmanager
    def watch(self, order_id: str | None) -> Iterator[asyncio.Queue[DeliveryRecord]]:
        """Records of ``order_id`` (or of every order, for None) as they change."""
        queue: asyncio.Queue[DeliveryRecord] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._watchers[order_id].add(queue)
        try:
            yield queue
        finally:
            self._watchers[order_id].discard(queue)
            if not self._watchers[order_id]:
                del self._watchers[order_id]
