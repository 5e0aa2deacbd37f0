from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from engine.store import Base


class Account(Base):
    """A customer's dunning state. Absent row = `active`."""

    __tablename__ = "dunning_accounts"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(40), default="active")
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")
