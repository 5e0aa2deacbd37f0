"""SMS length in segments (3GPP TS 23.038).

A text made only of the GSM 03.38 default alphabet is sent in GSM-7: 160 septets in one
segment, 153 per segment once it is split (the rest carries the concatenation header).
Characters of the extension table (`^{}\\[~]|€` and form feed) take two septets, and a
segment never splits such an escape pair. Any other character switches the whole message
to UCS-2: 70 UTF-16 code units in one segment, 67 per segment when split, and a surrogate
pair (an emoji, for instance) is never split across segments.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _pack(sizes: list[int], single: int, multi: int) -> int:
    """How many segments hold characters of these unit sizes, never splitting one."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def sms_length(text: str) -> SmsLength:
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        sizes = [2 if c in GSM7_EXTENDED else 1 for c in text]
        return SmsLength("GSM-7", sum(sizes), _pack(sizes, 160, 153))
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsLength("UCS-2", sum(sizes), _pack(sizes, 70, 67))
