"""The console's own table: drafts of catalogs and rulesets, with what they were last simulated as."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base


class Draft(Base):
    __tablename__ = "console_drafts"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_console_draft"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # catalog | ruleset
    name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]
    # sha256 of the text when a simulation last ran on it: publishing needs it to match.
    simulated_checksum: Mapped[str | None] = mapped_column(String(64), default=None)
    simulated_summary: Mapped[str] = mapped_column(Text, default="")
