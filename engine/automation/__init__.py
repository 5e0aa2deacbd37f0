"""Rule automation: when an event happens, the published rulesets that react to it (`on:`)
are evaluated with the event's context and their actions carried out, once; scheduled
rules (`schedule` + `for_each`) are swept by the scheduler through `Automation.sweep`.

    auto = build_automation(db, clock, runtime, ...)    # engine/system/automation_owners.py
    registry.register("automation", "#", auto.handler)  # engine/system/subscriptions.py

What rules read and do reaches the subsystems that own it through two typed components
(ports.py: `Records`, `Effects`) that engine.system binds: automation imports none of sales,
payments, messaging or dunning.

See docs/automation.md.
"""

from __future__ import annotations

from engine.automation.actions import ActionRunner, Cause, Outcome
from engine.automation.charges import create_charge
from engine.automation.context import build_context, invoice_context, subject_context, subject_contexts
from engine.automation.models import ActionRecord, ScheduledJob
from engine.automation.ports import Delivery, Effects, Facts, Note, Owners, Record, Records, StateChange, SubjectFilter
from engine.automation.service import SUBSYSTEM, Automation, JobsReport, SweepReport
from engine.automation.templating import CustomerLinks, Seller, template_data
from engine.automation.vocabulary import HANDLING, Collected, Handling, OnTheSpot

__all__ = [
    "HANDLING",
    "SUBSYSTEM",
    "ActionRecord",
    "ActionRunner",
    "Automation",
    "Cause",
    "Collected",
    "CustomerLinks",
    "Delivery",
    "Effects",
    "Facts",
    "Handling",
    "JobsReport",
    "Note",
    "OnTheSpot",
    "Outcome",
    "Owners",
    "Record",
    "Records",
    "ScheduledJob",
    "Seller",
    "StateChange",
    "SubjectFilter",
    "SweepReport",
    "build_context",
    "create_charge",
    "invoice_context",
    "subject_context",
    "subject_contexts",
    "template_data",
]
