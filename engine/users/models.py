"""The console's tables: its users and the audit trail of publishes and rollbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.base import Base


class ConsoleUser(Base):
    __tablename__ = "users_console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # viewer | editor | publisher
    # "scrypt$n$r$p$salt$hash" (base64 parts); never the password itself.
    password_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """One publish or rollback: who, when, why, and what it produced."""

    __tablename__ = "users_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))  # publish | rollback
    kind: Mapped[str] = mapped_column(String(20))  # catalog | ruleset
    target: Mapped[str] = mapped_column(String(100))  # the catalog or ruleset name
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    why: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
