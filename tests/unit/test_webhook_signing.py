"""REGISTRY_WEBHOOK_SECRET as Standard Webhooks keys: several secrets for rotation, whsec_ base64 or raw."""

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook

from registry.jobs.webhook_signing import WebhookSecretError, standard_webhook_headers, webhook_keys


def test_secrets_separated_by_spaces_or_commas_each_give_a_key():
    whsec = "whsec_" + base64.b64encode(b"key-one").decode()
    assert webhook_keys(f" {whsec},raw-secret  third ") == [b"key-one", b"raw-secret", b"third"]
    assert webhook_keys(None) == [] and webhook_keys("  ") == []


def test_a_whsec_secret_that_is_not_base64_is_refused():
    with pytest.raises(WebhookSecretError, match="base64"):
        webhook_keys("whsec_not*base64!")


def test_a_raw_secret_verifies_with_its_bytes_in_the_reference_library():
    body = b'{"reminder_id":7}'
    headers = standard_webhook_headers(webhook_keys("raw-secret"), "reminder-7", str(int(time.time())), body)
    assert Webhook(b"raw-secret").verify(body, headers) == {"reminder_id": 7}


def test_without_a_secret_calls_are_unsigned_but_still_identified():
    headers = standard_webhook_headers([], "reminder-7", "1800000000", b"{}")
    assert headers == {"webhook-id": "reminder-7", "webhook-timestamp": "1800000000"}
