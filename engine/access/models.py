from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base


class QuotaThreshold(Base):
    """A quota threshold a customer crossed in a window: recorded once, announced once."""

    __tablename__ = "access_quota_thresholds"
    __table_args__ = (
        UniqueConstraint("customer_id", "feature", "window_start", "threshold", name="uq_access_threshold_once"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    feature: Mapped[str] = mapped_column(String(100))
    window_start: Mapped[date] = mapped_column(Date)
    threshold: Mapped[int] = mapped_column(Integer)
    reached_at: Mapped[datetime]
