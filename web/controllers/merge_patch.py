"""What the PATCH routes of parties and agreements share: the media type, the body, its OpenAPI document."""

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from registry.services.merge_patch import MERGE_PATCH_MEDIA_TYPE, decode_merge_patch


async def merge_patch_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The request's merge patch; 415 for another media type (a JSON Patch, RFC 6902, is a different thing
    that a plain `application/json` body could be meant as), 400 when it is not a JSON object."""
    media_type = request.content_type[0]
    if media_type != MERGE_PATCH_MEDIA_TYPE:
        raise HTTPException(
            status_code=415,
            detail=f"send the patch as {MERGE_PATCH_MEDIA_TYPE} (RFC 7396), not {media_type or 'no content type'}",
        )
    return decode_merge_patch(await request.body())


def merge_patch_operation(what: str) -> type[Operation]:
    """An operation class that documents the patch body, which the handler reads itself."""
    schema = Schema(
        title=f"{what.capitalize()}MergePatch",
        type=OpenAPIType.OBJECT,
        required=["version"],
        properties={
            "version": Schema(
                type=OpenAPIType.INTEGER, minimum=1, description="the version the patch is based on (409 if stale)"
            )
        },
        additional_properties=True,
        description=(
            f"RFC 7396 JSON Merge Patch of the {what} as GET answers it: the fields to change, null removes an "
            "optional one, nested objects merge, arrays replace. key, created_at and updated_at may be sent "
            "unchanged and are refused when changed."
        ),
    )

    @dataclass
    class MergePatchOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={MERGE_PATCH_MEDIA_TYPE: OpenAPIMediaType(schema=schema)}, required=True
            )

    return MergePatchOperation
