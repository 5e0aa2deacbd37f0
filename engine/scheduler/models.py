"""The scheduler's table: one row per (job, time slot) it ran, so two schedulers that overlap
(a failover, a leader that has not noticed it lost its lock yet) never run a slot twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base

RUNNING = "running"
DONE = "done"
FAILED = "failed"


class JobRun(Base):
    __tablename__ = "scheduler_runs"
    __table_args__ = (Index("ix_scheduler_runs_started", "started_at"),)

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot: Mapped[datetime] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default=RUNNING)
    owner: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
