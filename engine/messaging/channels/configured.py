"""The channels a delivery run uses, by name, made from the settings. Moved from
engine/messaging/channels.py."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.messaging.channels.base import Channel
from engine.messaging.channels.in_app import InAppChannel
from engine.messaging.channels.mime import AttachmentSource
from engine.messaging.channels.sms import FileSmsProvider, SmsChannel, SmsProvider
from engine.messaging.channels.smtp import EmailChannel
from engine.messaging.channels.webhook import WebhookChannel


class Channels:
    """The configured channels by name. A channel that is not configured keeps its
    notifications pending (not lost) until it is."""

    def __init__(self, channels: Iterable[Channel] = ()) -> None:
        self._by_name: dict[str, Channel] = {c.name: c for c in channels}

    @classmethod
    def from_settings(
        cls,
        *,
        smtp_url: str | None = None,
        sms_provider: SmsProvider | None = None,
        sms_file: str | Path = "var/sms.jsonl",
        webhooks: bool = True,
        allow_private_webhooks: bool = False,
        attachments: AttachmentSource | None = None,
    ) -> Channels:
        """Email when an SMTP URL is given (default: BILLING_SMTP_URL), SMS to the provider
        (default: a JSON-lines file), in-app always, webhooks unless turned off. `attachments`
        makes the files emails carry (an invoice's PDF)."""
        if smtp_url is None:
            from engine.config import get_settings

            smtp_url = get_settings().smtp_url
        chans: list[Channel] = [InAppChannel()]
        if smtp_url:
            chans.append(EmailChannel.from_url(smtp_url, attachments=attachments))
        chans.append(SmsChannel(sms_provider or FileSmsProvider(sms_file)))
        if webhooks:
            chans.append(WebhookChannel(allow_private=allow_private_webhooks))
        return cls(chans)

    def get(self, name: str) -> Channel | None:
        return self._by_name.get(name)

    def require(self, name: str) -> Channel:
        channel = self._by_name.get(name)
        if channel is None:
            raise KeyError(f"channel {name!r} is not configured")
        return channel

    def names(self) -> list[str]:
        return list(self._by_name)

    def close(self) -> None:
        for channel in self._by_name.values():
            channel.close()
