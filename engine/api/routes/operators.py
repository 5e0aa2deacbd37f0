"""The operator's actions over HTTP (admin keys): publish, roll back, move subscriptions to a
new catalog version, console users. Each calls the engine/system/operations function its CLI
command calls, received as `ctx.operations` (engine/system/api_operations.py); API keys
(`ops.py`) and bank files (`reconciliation.py`) have theirs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from engine.api.context import ApiContext
from engine.api.deps import ADMIN, context
from engine.api.keys import Principal
from engine.api.operations import Versioned
from engine.api.problems import Problem, documented
from engine.api.types import JSON_INTEGER, JsonBool, PlanId
from engine.errors import OperationError

router = APIRouter(prefix="/v1", tags=["operations"], responses=documented(400, 401, 403, 404, 409, 413, 422))

# A published document's text; its validity (a catalog or ruleset per FORMATS §1/§2) is a
# format JSON Schema cannot state (tests/api/test_schemathesis.py generates valid ones).
DOCUMENT_FORMAT = "billing-document"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
Why = Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S", description="why: kept in the audit")]
Role = Literal["viewer", "editor", "publisher"]
STATUS = {"invalid": 422, "not_found": 404, "conflict": 409}


def actor(who: Principal) -> dict[str, str]:
    """The audit's user for an admin key: an admin key may do what a publisher may."""
    return {"name": f"api_key:{who.key_id}", "role": "publisher"}


@contextmanager
def refused(prefix: str = "") -> Iterator[None]:
    try:
        yield
    except OperationError as exc:
        extra = {"problems": exc.problems} if exc.problems else {}
        raise Problem(STATUS[exc.kind], exc.message, prefix + exc.field, **extra) from None


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(default="document.yaml", min_length=1, max_length=200,
                      description="the name problems are reported against (file:line)")
    text: str = Field(min_length=1, max_length=1_000_000, json_schema_extra={"format": DOCUMENT_FORMAT},
                      description="the YAML of a catalog or a ruleset")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1, max_length=50)
    comment: str = Field(default="", max_length=500)


@router.post("/publish", status_code=201, summary="Publish catalogs and rulesets as new versions, all or nothing",
             description="What `billing publish` does. Every document is checked before any is stored; a "
             "problem is a 422 listing each one as file:line: field.")
def publish(body: PublishIn, who: Principal = ADMIN, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    texts = [(d.file, d.text) for d in body.documents]
    with refused(), ctx.db.session() as session:
        items = ctx.operations.publish_texts(session, texts, f"api_key:{who.key_id}", body.comment, clock=ctx.clock)
    ctx.after_commit()
    return {"published": [i.as_dict() for i in items]}


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_version: Annotated[int, Field(ge=1, le=1_000_000_000), JSON_INTEGER]
    why: Why


Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=100)]


@router.post("/catalogs/{name}/rollback", status_code=201, summary="Make an earlier catalog version current again")
def rollback_catalog(name: Name, body: RollbackIn, who: Principal = ADMIN,
                     ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return _rollback("catalog", name, body, who, ctx)


@router.post("/rulesets/{name}/rollback", status_code=201, summary="Make an earlier ruleset version current again")
def rollback_ruleset(name: Name, body: RollbackIn, who: Principal = ADMIN,
                     ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    return _rollback("ruleset", name, body, who, ctx)


def _rollback(kind: Versioned, name: str, body: RollbackIn, who: Principal,
              ctx: ApiContext) -> dict[str, Any]:
    with refused(), ctx.db.session() as session:
        out = ctx.operations.rollback(session, kind, name, body.to_version, body.why, actor=actor(who), clock=ctx.clock)
    ctx.after_commit()
    return out


class MigrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The bounds on the field (not inside the union), so a refusal names `version` itself;
    # stated again for the schema, which does not carry them through the union.
    version: Annotated[int, JSON_INTEGER] | SkipJsonSchema[None] = Field(
        default=None, ge=1, le=1_000_000_000, description="default: the latest version",
        json_schema_extra={"minimum": 1, "maximum": 1_000_000_000})
    plan: PlanId | SkipJsonSchema[None] = Field(default=None, description="only the subscriptions of this plan")
    subscription_ids: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] | SkipJsonSchema[None] = \
        Field(default=None, max_length=10_000, description="only these (default: every one the version can take)")
    dry_run: JsonBool = Field(default=False, description="only say what would move")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return _refuse_nulls(data)


@router.post("/catalogs/{name}/migrations", summary="Move grandfathered subscriptions to a catalog version",
             description="From each subscription's next period on; `blocked` lists those whose plan the "
             "version lacks (left as they are). What the console's migration and "
             "`billing migrate-subscriptions` do.")
def migrate(name: Name, body: MigrationIn, ctx: ApiContext = Depends(context),
            who: Principal = ADMIN) -> dict[str, Any]:
    with refused(), ctx.db.session() as session:
        out = ctx.operations.migrate_catalog(session, name, body.version, clock=ctx.clock, plan=body.plan,
                                         subscription_ids=body.subscription_ids, dry_run=body.dry_run)
    ctx.after_commit()
    return out


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=USER_PATTERN)
    role: Role
    password: str = Field(min_length=8, max_length=200, description="at least 8 characters; stored scrypt-hashed")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    role: Role | SkipJsonSchema[None] = None
    disabled: JsonBool | SkipJsonSchema[None] = Field(default=None, description="true: sign-in refused")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        data = _refuse_nulls(data)
        if isinstance(data, dict) and not data:
            raise ValueError("give a role or disabled (or both)")
        return data


def _refuse_nulls(data: Any) -> Any:
    """null is not "not given": an absent field is."""
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None:
                raise ValueError(f"{key}: leave it out rather than null")
    return data


class UserOut(BaseModel):
    name: str
    role: str
    disabled: bool
    created_at: str


@router.post("/users", status_code=201, response_model=UserOut, dependencies=[ADMIN],
             summary="Add a console user (the pricing managers' sign-in)")
def add_user(body: UserIn, ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with refused(), ctx.db.session() as session:
        return ctx.operations.add_user(session, body.name, body.role, body.password, clock=ctx.clock)


@router.patch("/users/{name}", response_model=UserOut, dependencies=[ADMIN],
              summary="Change a console user's role, or disable / enable their sign-in")
def change_user(body: UserChange, name: Annotated[str, Path(pattern=USER_PATTERN)],
                ctx: ApiContext = Depends(context)) -> dict[str, Any]:
    with refused(), ctx.db.session() as session:
        return ctx.operations.change_user(session, name, role=body.role, disabled=body.disabled)


__all__ = ["DOCUMENT_FORMAT", "router"]
