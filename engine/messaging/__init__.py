"""Messaging: templates -> email / SMS / in-app / webhook, with preferences, quiet hours,
digests, deduplication, retries and dead letters.

Record in the caller's transaction with `notify(...)`; send with `deliver_pending(...)`
(the scheduler calls it every few seconds). See docs/messaging.md.
"""

from engine.messaging.channels import (
    Attachment,
    AttachmentSource,
    Channel,
    Channels,
    EmailChannel,
    FileSmsProvider,
    InAppChannel,
    Outgoing,
    PermanentError,
    RetryPolicy,
    SmsChannel,
    SmsProvider,
    SmtpSettings,
    TransientError,
    WebhookChannel,
    sign,
    verify_signature,
)
from engine.messaging.dead_letters import list_dead_letters, list_notifications, retry_dead_letter
from engine.messaging.delivery import DeliveryReport, deliver_pending, deliveries_in_flight
from engine.messaging.digests import flush_digests
from engine.messaging.due import DueWatch
from engine.messaging.endpoints import (
    MAX_WEBHOOK_URL,
    EndpointUrlRefused,
    WebhookEndpoint,
    add_webhook_endpoint,
    disable_webhook_endpoint,
    list_webhook_endpoints,
)
from engine.messaging.feed import list_feed, mark_read, unread_count
from engine.messaging.models import InAppMessage, Notification, NotificationPreference
from engine.messaging.notify import TEMPLATE_CATEGORIES, NotifyRequest, NotifyResult, notify, notify_many
from engine.messaging.preferences import (
    QUIET_HOURS_CHANNELS,
    TRANSACTIONAL_CATEGORIES,
    Preferences,
    get_preferences,
    set_preferences,
)
from engine.messaging.sandbox import RenderLimitError, RenderLimits
from engine.messaging.sms import SmsLength, sms_length
from engine.messaging.templates import (
    CHANNELS,
    TEMPLATE_NAMES,
    Rendered,
    Renderer,
    TemplateError,
    format_date,
    format_money,
    preview,
)

__all__ = [
    "CHANNELS",
    "MAX_WEBHOOK_URL",
    "QUIET_HOURS_CHANNELS",
    "TEMPLATE_CATEGORIES",
    "TEMPLATE_NAMES",
    "TRANSACTIONAL_CATEGORIES",
    "Attachment",
    "AttachmentSource",
    "Channel",
    "Channels",
    "DeliveryReport",
    "DueWatch",
    "EmailChannel",
    "EndpointUrlRefused",
    "FileSmsProvider",
    "InAppChannel",
    "InAppMessage",
    "Notification",
    "NotificationPreference",
    "NotifyRequest",
    "NotifyResult",
    "Outgoing",
    "PermanentError",
    "Preferences",
    "RenderLimitError",
    "RenderLimits",
    "Rendered",
    "Renderer",
    "RetryPolicy",
    "SmsChannel",
    "SmsLength",
    "SmsProvider",
    "SmtpSettings",
    "TemplateError",
    "TransientError",
    "WebhookChannel",
    "WebhookEndpoint",
    "add_webhook_endpoint",
    "deliver_pending",
    "deliveries_in_flight",
    "disable_webhook_endpoint",
    "flush_digests",
    "format_date",
    "format_money",
    "get_preferences",
    "list_dead_letters",
    "list_feed",
    "list_notifications",
    "list_webhook_endpoints",
    "mark_read",
    "notify",
    "notify_many",
    "preview",
    "retry_dead_letter",
    "set_preferences",
    "sign",
    "sms_length",
    "unread_count",
    "verify_signature",
]
