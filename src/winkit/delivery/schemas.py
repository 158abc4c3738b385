"""The delivery service's API contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from winkit.delivery.lifecycle import Status


class HistoryEntry(BaseModel):
    status: Status
    at: datetime
    by: str


class DeliveryStatus(BaseModel):
    order_id: str
    status: Status
    history: list[HistoryEntry]
    allowed_next: list[Status]
    updated_at: datetime


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
