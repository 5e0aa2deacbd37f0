"""The tables of rule automation: jobs the rules scheduled for later (payment retries,
delayed events) and the ledger that makes every other action happen once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base

PENDING = "pending"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"


class ScheduledJob(Base):
    """Work a rule asked for at a later time (`retry_payment: {after: 2d}`). `key` is unique:
    the same request (a redelivered event, a re-run slot) schedules nothing new."""

    __tablename__ = "automation_jobs"
    __table_args__ = (Index("ix_automation_jobs_due", "status", "due_at"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # payment_retry | emit
    customer_id: Mapped[str | None] = mapped_column(String(64), default=None)
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(Text, default=None)
    rule: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class ActionRecord(Base):
    """One action carried out: (rule, cause, action index) is the key, so an action whose
    effects are not idempotent by themselves (a charge, an emitted event, a cancellation)
    never runs twice for the same cause. Written in the transaction of the effects."""

    __tablename__ = "automation_actions"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    action: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(200))
    cause: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
