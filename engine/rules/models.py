"""The tables of the rules runtime: published ruleset versions and the decision log.
Other subsystems read them through `engine.rules` functions, never directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.rules.model import Decision
from engine.store.base import Base

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class RuleVersion(Base):
    """One published, immutable version of a ruleset. A rollback is a new version with an
    earlier version's text (`rollback_of` names it): history only grows."""

    __tablename__ = "rules_versions"
    __table_args__ = (UniqueConstraint("ruleset", "version", name="uq_rules_version"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    ruleset: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(Text)  # the YAML as written
    file: Mapped[str] = mapped_column(String(500), default="")
    diff: Mapped[str] = mapped_column(Text, default="")  # unified diff against the previous version
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)  # rule ids, for listings
    rollback_of: Mapped[int | None] = mapped_column(Integer, default=None)


class DecisionRecord(Base):
    """One logged evaluation: which versions were consulted, which rules held, what they asked
    for and the input values that decided, so support can answer "why"."""

    __tablename__ = "rules_decisions"
    __table_args__ = (Index("ix_rules_decisions_customer_time", "customer_id", "time"),)

    pk: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(100), index=True)
    event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(64), default=None)
    outcome: Mapped[str] = mapped_column(String(20), default="")  # deny | allow | actions | none
    rulesets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name -> version
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)  # "ruleset/rule" in order
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # "ruleset/rule" -> {path: value}

    @classmethod
    def from_decision(cls, decision: Decision, *, event_id: str | None, customer_id: str | None) -> DecisionRecord:
        return cls(**cls.row(decision, event_id=event_id, customer_id=customer_id))

    @staticmethod
    def row(decision: Decision, *, event_id: str | None, customer_id: str | None) -> dict[str, Any]:
        """The record's columns, for a bulk INSERT."""
        data = decision.to_dict()
        outcome = decision.access() or ("actions" if decision.matches else "none")
        return dict(
            decision_id=decision.decision_id or "",
            time=decision.time,
            event=decision.event,
            event_id=event_id,
            customer_id=customer_id,
            outcome=outcome,
            rulesets=data["rulesets"],
            rules=decision.rule_ids,
            actions=data["actions"],
            inputs={f"{m['ruleset']}/{m['rule']}": m["inputs"] for m in data["matches"]},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "event": self.event,
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "outcome": self.outcome,
            "rulesets": self.rulesets,
            "rules": self.rules,
            "actions": self.actions,
            "inputs": self.inputs,
        }
