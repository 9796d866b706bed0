"""Request and response models shared by several routers (API.md's "shared pieces")."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What is wrong and what would be accepted.")
    field: str | None = Field(default=None, description="The request field at fault, if any.")


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing, wrong or revoked API key."},
    404: {"model": ErrorResponse, "description": "Not found in the caller's organization."},
    422: {"model": ErrorResponse, "description": "A field's value is not acceptable."},
}
