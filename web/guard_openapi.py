"""The guard's request bodies and security in the OpenAPI document.

The check handlers read their body straight off the ASGI channel (web/controllers/guard.py `_body`), so Litestar
sees no `data` parameter and would document no body at all; a generated client could then not send a check.
These operation classes add the body the handlers actually parse (guard/service.py `ShareRequestIn`, the same
field rules) without changing how they read it.
"""

from dataclasses import dataclass

from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

from guard.service import BATCH_MAX
from guard.subjects import SUBJECT_MAX_LENGTH

BEARER = "bearerAuth"


def _reference(description: str) -> Schema:
    return Schema(
        type=OpenAPIType.STRING, min_length=1, max_length=200, pattern="^[^\\u0000]*$", description=description
    )


SHARE_REQUEST = Schema(
    title="ShareRequest",
    type=OpenAPIType.OBJECT,
    description="One share about to be made. Unknown references are a logged denial, not a 400.",
    required=["recipient", "purpose", "data_categories", "data_subject"],
    additional_properties=False,
    properties={
        "recipient": _reference("the recipient party's key"),
        "purpose": _reference("a fideslang data use, e.g. essential.service.operations"),
        "data_categories": Schema(
            type=OpenAPIType.ARRAY,
            items=_reference("a fideslang data category, e.g. user.contact.email"),
            min_items=1,
            max_items=100,
        ),
        "destination": _reference("ISO 3166-1 alpha-2 country the data goes to, when not the recipient's own"),
        "data_subject": _reference("a fideslang data subject, e.g. customer"),
        "subject_ref": Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=SUBJECT_MAX_LENGTH,
            description=(
                "the one person whose data is shared (an e-mail address, a customer number): checked against their "
                "objections (SUBJECT_OBJECTED) and restrictions (SUBJECT_RESTRICTED), needed for purposes under "
                "`marketing` (SUBJECT_REF_MISSING). "
                "Normalised (trimmed; e-mail addresses case-folded) and logged only as a keyed digest."
            ),
        ),
    },
)
SHARE_REQUEST_BATCH = Schema(
    title="ShareRequestBatch",
    type=OpenAPIType.ARRAY,
    items=SHARE_REQUEST,
    min_items=1,
    max_items=BATCH_MAX,
    description=f"1 to {BATCH_MAX} share requests; a structural error in any rejects the whole batch (400).",
)

# Inline rather than under components/schemas: Litestar replaces those with the schemas it generated itself.
COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A registry API key (ofx_…): `registry apikey create NAME --scope SCOPE`",
        )
    },
)
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]


def _json_body(schema: Schema) -> RequestBody:
    return RequestBody(content={"application/json": OpenAPIMediaType(schema=schema)}, required=True)


@dataclass
class CheckOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(SHARE_REQUEST)


@dataclass
class CheckBatchOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(SHARE_REQUEST_BATCH)
