"""REGISTRY_WEBHOOK_SECRET as Standard Webhooks keys: several secrets for rotation, whsec_ base64 or raw, each
at least 24 bytes; the payload is the spec's `type`, `timestamp` and `data`."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from registry.jobs.delivery import webhook_body
from registry.jobs.webhook_signing import WebhookSecretError, standard_webhook_headers, webhook_keys

KEY_ONE = b"key-one-of-twenty-four-bytes"
RAW_SECRET = "a-raw-secret-of-24-bytes-or-more"


def test_secrets_separated_by_spaces_or_commas_each_give_a_key():
    whsec = "whsec_" + base64.b64encode(KEY_ONE).decode()
    assert webhook_keys(f" {whsec},{RAW_SECRET}  {RAW_SECRET}-2 ") == [
        KEY_ONE,
        RAW_SECRET.encode(),
        f"{RAW_SECRET}-2".encode(),
    ]
    assert webhook_keys(None) == [] and webhook_keys("  ") == []


def test_a_whsec_secret_that_is_not_base64_is_refused():
    with pytest.raises(WebhookSecretError, match="base64"):
        webhook_keys("whsec_not*base64!")


@pytest.mark.parametrize("secret", ["raw-secret", "whsec_" + base64.b64encode(b"twenty-three-bytes-long").decode()])
def test_a_key_shorter_than_24_bytes_is_refused(secret):
    with pytest.raises(WebhookSecretError, match="at least 24 bytes"):
        webhook_keys(secret)


def test_a_raw_secret_verifies_with_its_bytes_in_the_reference_library():
    body = b'{"reminder_id":7}'
    headers = standard_webhook_headers(webhook_keys(RAW_SECRET), "reminder-7", str(int(time.time())), body)
    assert Webhook(RAW_SECRET.encode()).verify(body, headers) == {"reminder_id": 7}


def test_the_payload_carries_type_timestamp_and_data():
    at = datetime(2026, 12, 24, 7, 0, 1, tzinfo=UTC)
    assert json.loads(webhook_body({"type": "agreement.reminder", "reminder_id": 7}, at)) == {
        "type": "agreement.reminder",
        "timestamp": "2026-12-24T07:00:01Z",
        "data": {"reminder_id": 7},
    }
    # A message built with the older `event` key gets it as its type.
    assert json.loads(webhook_body({"event": "subject.notification", "notification_id": 3}, at))["type"] == (
        "subject.notification"
    )
