"""Standard Webhooks signatures (https://www.standardwebhooks.com/) for reminder webhooks.

Each call carries `webhook-id` (the same on every retry of one reminder, so a receiver can drop duplicates),
`webhook-timestamp` (Unix seconds, so a captured call cannot be replayed later) and `webhook-signature`:
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per configured secret, space-separated. Several secrets
let a receiver rotate: configure old and new together, move the receiver to the new one, drop the old.

A secret is `whsec_` + base64 of the key (what the Standard Webhooks libraries expect); any other value is
taken as its UTF-8 bytes (verify with `Webhook(secret.encode())`).
"""

import base64
import binascii
import hashlib
import hmac
import re

SECRET_PREFIX = "whsec_"
_SEPARATORS = re.compile(r"[\s,]+")


class WebhookSecretError(ValueError):
    """REGISTRY_WEBHOOK_SECRET holds a whsec_ secret that is not base64."""


def webhook_keys(secrets: str | None) -> list[bytes]:
    """The signing keys in REGISTRY_WEBHOOK_SECRET: one or more secrets separated by spaces or commas."""
    keys = []
    for secret in _SEPARATORS.split(secrets or ""):
        if not secret:
            continue
        if secret.startswith(SECRET_PREFIX):
            encoded = secret[len(SECRET_PREFIX) :]
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise WebhookSecretError(
                    "REGISTRY_WEBHOOK_SECRET: a whsec_ secret must be base64 after the prefix"
                ) from None
            if not key:
                raise WebhookSecretError("REGISTRY_WEBHOOK_SECRET: a whsec_ secret is empty")
        else:
            key = secret.encode()
        keys.append(key)
    return keys


def signature_header(keys: list[bytes], message_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def standard_webhook_headers(keys: list[bytes], message_id: str, timestamp: str, body: bytes) -> dict[str, str]:
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp}
    if keys:
        headers["webhook-signature"] = signature_header(keys, message_id, timestamp, body)
    return headers
