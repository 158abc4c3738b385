"""Keeps this replica's read model equal to the database.

Freshness: every replica listens (``EventBus.listen``, a plain NATS subscription, so each
replica hears every event) to ``product.changed`` and ``stock.changed``. An event only
names a product: the product is re-read from the database, together with any others
waiting, and applied by its version. A late, repeated or out-of-order event costs at most
one read and never takes the model back.

Convergence: a plain subscription keeps nothing for a replica that was away, so missed
events are made up by reading every product again:
- as soon as the bus is back after an outage (its connection is watched), which covers
  NATS going down and reconnects;
- every ``RESYNC_SECONDS`` in any case, which covers what cannot be seen: a message lost
  while connected, a write between the first load and the first subscription, and writes
  by other replicas while NATS stays down.
A full read costs ~0.75 s of database time at 10,000 products on SecantusDB, hence not
every few seconds. Something cheaper (a change sequence to read from) would need every
write, checkouts included, to take the next number from one shared document, making all
catalog writes contend on it.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from winkit.catalog.read_model import CatalogReadModel
from winkit.catalog.store import CatalogStore
from winkit.core.event_contracts import ProductChanged, StockChanged
from winkit.core.events import EventBus

log = structlog.get_logger("winkit.catalog")

# Candidates for settings: how often everything is read again, how often the bus is checked.
RESYNC_SECONDS = 60.0
CONNECTION_CHECK_SECONDS = 0.5
RETRY_SECONDS = 1.0


class ReadModelSync:
    def __init__(self, store: CatalogStore, model: CatalogReadModel) -> None:
        self._store = store
        self._model = model
        self._stale: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Full re-reads done since start (after an outage, or on the periodic timer).
        self.resyncs = 0

    async def load(self) -> int:
        """Apply every stored product; how many changed what is shown."""
        changed = 0
        async for product in self._store.all_products():
            changed += self._model.apply(product)
        return changed

    async def hear(self, changed: ProductChanged | StockChanged) -> None:
        """An event naming a changed product: re-read it, unless it is shown at that version."""
        if isinstance(changed, ProductChanged) and self._model.holds(changed.product_id, changed.version):
            return
        self._stale.add(changed.product_id)
        self._wake.set()

    def start(self, bus: EventBus) -> None:
        self._tasks = [
            asyncio.create_task(self._reread_stale(), name="catalog-read-model-reread"),
            asyncio.create_task(self._resync(bus), name="catalog-read-model-resync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _reread_stale(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            stale, self._stale = self._stale, set()
            try:
                products = await self._store.products_by_ids(list(stale))
            except Exception as exc:  # the database away, say: this loop must keep going
                log.warning("read_model_reread_failed", error=str(exc) or type(exc).__name__)
                self._stale |= stale
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
                continue
            for product in products:
                self._model.apply(product)

    async def _resync(self, bus: EventBus) -> None:
        # The first load came before the listeners subscribed: that counts as an outage.
        missed, was_connected, last = True, False, time.monotonic()
        while True:
            await asyncio.sleep(CONNECTION_CHECK_SECONDS)
            connected = bus.connected
            missed = missed or not connected
            # Connected at two checks in a row: the subscriptions are back by now (they are
            # made, or restored by the client, right after connecting).
            back = missed and connected and was_connected
            was_connected = connected
            if not back and time.monotonic() - last < RESYNC_SECONDS:
                continue
            try:
                changed = await self.load()
            except Exception as exc:  # the database away, say: this loop must keep going
                log.warning("read_model_resync_failed", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            last = time.monotonic()
            self.resyncs += 1
            missed = missed and not back
            if changed:
                log.info("read_model_resynced", changed=changed, products=len(self._model))
