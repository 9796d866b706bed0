"""POST /v1/assign: a stateless preview of stratified assignment (JSON, or CSV streamed)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from xngin.api.deps import PrincipalDep, RuntimeDep, SessionDep
from xngin.api.schemas import ERROR_RESPONSES
from xngin.services.assign import AssignmentOutcome, RerandomizeIn, assign_audience
from xngin.services.design import ArmIn, FilterIn

router = APIRouter(tags=["design"], responses=ERROR_RESPONSES)


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_type: str = Field(description="Registered participant type.")
    filters: list[FilterIn] = Field(default_factory=list, description="Audience filters (AND).")
    arms: list[ArmIn] = Field(min_length=2, description="Arms, control first, with weights.")
    strata: list[str] = Field(default_factory=list, description="Fields marked is_strata.")
    desired_n: int | None = Field(
        default=None, ge=1, description="Sample this many (default: the whole audience)."
    )
    seed: int = Field(ge=-(2**63), lt=2**63, description="Same seed and data, same assignment.")
    rerandomize: RerandomizeIn | None = Field(
        default=None, description="Redraw until the balance check passes."
    )


def _arm_ids(arms: list[ArmIn]) -> list[str]:
    return [a.arm_id or f"arm_{i}" for i, a in enumerate(arms)]


def _json_stream(outcome: AssignmentOutcome, arms: list[ArmIn]) -> Iterator[bytes]:
    ids = _arm_ids(arms)
    head = {
        "sample_size": outcome.sample_size,
        "arm_sizes": [
            {"arm_id": ids[i], "arm_name": a.arm_name, "size": outcome.arm_sizes[i]}
            for i, a in enumerate(arms)
        ],
        "balance_check": outcome.balance_check,
        "strata_counts": outcome.strata_counts,
    }
    text = json.dumps(head, default=str)
    yield (text[:-1] + ', "assignments": [').encode()
    labels = outcome.stratum_json()
    batch: list[str] = []
    for i, pid in enumerate(outcome.participant_ids):
        prefix = "," if i else ""
        batch.append(
            f'{prefix}{{"participant_id": {json.dumps(pid)}, '
            f'"arm_id": {json.dumps(ids[outcome.arm_index[i]])}, '
            f'"strata": {labels[outcome.stratum_code[i]]}}}'
        )
        if len(batch) >= 5000:
            yield "".join(batch).encode()
            batch = []
    yield ("".join(batch) + "]}").encode()


def _csv_stream(
    outcome: AssignmentOutcome, arms: list[ArmIn], strata: list[str]
) -> Iterator[bytes]:
    ids = _arm_ids(arms)
    names = [a.arm_name for a in arms]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["participant_id", "arm_id", "arm_name", *strata])
    labels = outcome.stratum_labels
    for i, pid in enumerate(outcome.participant_ids):
        arm = int(outcome.arm_index[i])
        label = labels[outcome.stratum_code[i]]
        writer.writerow([pid, ids[arm], names[arm], *(label.get(s) for s in strata)])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


@router.post(
    "/assign",
    summary="Preview a stratified assignment",
    response_description="sample_size, arm_sizes, balance_check, strata_counts, assignments",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def assign(
    body: AssignRequest,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    format: Literal["json", "csv"] = Query(default="json", description="json, or csv streamed."),
) -> Any:
    outcome = assign_audience(
        runtime,
        session,
        principal,
        participant_type=body.participant_type,
        filters=body.filters,
        arms=body.arms,
        strata=body.strata,
        desired_n=body.desired_n,
        seed=body.seed,
        rerandomize=body.rerandomize,
    )
    if format == "csv":
        return StreamingResponse(
            _csv_stream(outcome, body.arms, body.strata),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="assignments.csv"'},
        )
    return StreamingResponse(_json_stream(outcome, body.arms), media_type="application/json")
