"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for reminder webhooks.

Each call carries `webhook-id` (the same on every retry of one reminder, so a receiver can drop duplicates),
`webhook-timestamp` (Unix seconds, so a captured call cannot be replayed later) and `webhook-signature`:
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per configured secret, space-separated. Several secrets
let a receiver rotate: configure old and new together, move the receiver to the new one, drop the old.

A secret is `whsec_` + base64 of the key (what the Standard Webhooks libraries expect); any other value is
taken as its UTF-8 bytes (verify with `Webhook(secret.encode())`). Every key holds at least 24 bytes, and a
webhook URL without a secret stops the service at start (kernel/settings.py): no webhook goes out unsigned.
"""

import base64
import hashlib
import hmac

from kernel.settings import WEBHOOK_SECRET_PREFIX, webhook_signing_keys

SECRET_PREFIX = WEBHOOK_SECRET_PREFIX


class WebhookSecretError(ValueError):
    """REGISTRY_WEBHOOK_SECRET holds a secret that is not one: a whsec_ secret that is not base64, or a key
    shorter than 24 bytes."""


def webhook_keys(secrets: str | None) -> list[bytes]:
    """The signing keys in REGISTRY_WEBHOOK_SECRET: one or more secrets separated by spaces or commas."""
    try:
        return webhook_signing_keys(secrets)
    except ValueError as exc:
        raise WebhookSecretError(f"REGISTRY_WEBHOOK_SECRET: {exc}") from None


def signature_header(keys: list[bytes], message_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def standard_webhook_headers(keys: list[bytes], message_id: str, timestamp: str, body: bytes) -> dict[str, str]:
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp}
    if keys:
        headers["webhook-signature"] = signature_header(keys, message_id, timestamp, body)
    return headers
