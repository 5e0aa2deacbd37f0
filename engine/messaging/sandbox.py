"""The limited template sandbox now lives in engine/sandbox.py: every render of the engine
(messages, invoice HTML, the console's previews) shares it. Kept for existing imports."""

from engine.sandbox import (
    LimitedSandbox,
    RenderBudget,
    RenderLimitError,
    RenderLimits,
    collect,
    guard_filter,
    plain_data,
)

__all__ = ["LimitedSandbox", "RenderBudget", "RenderLimitError", "RenderLimits", "collect", "guard_filter",
           "plain_data"]
