"""The OpenAPI document as the app serves it, built without a database, and written to clients/openapi.json:
`uv run python -m web.openapi_file clients/openapi.json` (a test holds the committed file to the served one).
Apart from web/openapi.py because it builds the whole app, which imports web/openapi.py."""

import sys
from pathlib import Path
from typing import Any

from kernel.settings import Settings
from web.app import create_app
from web.auth import PUBLIC_PATH_PATTERNS
from web.openapi import COMMITTED_DOCUMENT, complete_contract, document_json


def served_document() -> dict[str, Any]:
    """The document the app serves, built without a database (nothing in it depends on the data)."""
    app = create_app(Settings(database_url="postgresql://offline@127.0.0.1:1/none", seed_file=None))
    document = app.openapi_schema
    complete_contract(document, PUBLIC_PATH_PATTERNS)
    return document.to_schema()


if __name__ == "__main__":  # `uv run python -m web.openapi_file clients/openapi.json`
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else COMMITTED_DOCUMENT
    target.write_text(document_json(served_document()), encoding="utf-8")
    print(f"wrote {target}")
