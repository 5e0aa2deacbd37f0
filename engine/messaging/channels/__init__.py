"""Delivery channels behind one interface: email (SMTP), SMS (a provider), in-app (the
feed table) and webhooks (signed HTTP POST).

A channel's `send` either returns (delivered; optionally a provider message id) or raises
`TransientError` (try again later, with backoff) or `PermanentError` (no point retrying).
Channels never touch the notifications table; `engine.messaging.service` does.

One module per job: `base` (the interface, `Outgoing`, the errors, `RetryPolicy`),
`smtp_settings` (BILLING_SMTP_URL), `mime` (the email on the wire), `smtp` (`EmailChannel`),
`sms`, `in_app`, `webhook` (the channel, signing, the URL check) and `configured`
(`Channels`, the set a delivery run uses). Names are importable from here as they were from
the single module this package replaces.
"""

from engine.messaging.channels.base import (
    Channel,
    DeliveryError,
    Outgoing,
    PermanentError,
    RetryPolicy,
    TransientError,
)
from engine.messaging.channels.configured import Channels
from engine.messaging.channels.in_app import InAppChannel
from engine.messaging.channels.mime import Attachment, AttachmentSource, RawEmail, build_email
from engine.messaging.channels.sms import FileSmsProvider, SmsChannel, SmsProvider
from engine.messaging.channels.smtp import EmailChannel
from engine.messaging.channels.smtp_settings import SmtpSettings
from engine.messaging.channels.webhook import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    check_webhook_url,
    sign,
    verify_signature,
    webhook_body,
)

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Attachment",
    "AttachmentSource",
    "Channel",
    "Channels",
    "DeliveryError",
    "EmailChannel",
    "FileSmsProvider",
    "InAppChannel",
    "Outgoing",
    "PermanentError",
    "RawEmail",
    "RetryPolicy",
    "SmsChannel",
    "SmsProvider",
    "SmtpSettings",
    "TransientError",
    "WebhookChannel",
    "build_email",
    "check_webhook_url",
    "sign",
    "verify_signature",
    "webhook_body",
]
