"""Who is calling: API keys, organizations, and key management for the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from xngin.errors import NotFound, Unauthorized
from xngin.services.runtime import Runtime
from xngin.store import organizations as repo

DEFAULT_ORGANIZATION = "default"


@dataclass(frozen=True, slots=True)
class Principal:
    organization_id: str
    organization_name: str
    api_key_id: str


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    organization: str
    plaintext: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    prefix: str
    name: str
    organization: str
    created_at: str
    revoked: bool


def authenticate(runtime: Runtime, key: str) -> Principal:
    """Map an API key to its organization; a missing, wrong or revoked key is 401."""
    with runtime.sessions() as session:
        found = repo.find_active_api_key(session, key)
        if found is None:
            raise Unauthorized("invalid or revoked API key", field="X-API-Key")
        return Principal(
            organization_id=found.organization_id,
            organization_name=found.organization.name,
            api_key_id=found.id,
        )


def issue_api_key(
    runtime: Runtime, *, organization: str = DEFAULT_ORGANIZATION, name: str = ""
) -> IssuedKey:
    with runtime.sessions.begin() as session:
        org = repo.get_or_create_organization(session, organization)
        key, plaintext = repo.create_api_key(session, organization=org, name=name)
        return IssuedKey(key_id=key.id, organization=org.name, plaintext=plaintext)


def list_api_keys(runtime: Runtime, *, organization: str | None = None) -> list[KeyInfo]:
    with runtime.sessions() as session:
        org_id = None
        if organization is not None:
            org = repo.get_organization_by_name(session, organization)
            if org is None:
                raise NotFound(
                    f"organization {organization!r} does not exist", field="organization"
                )
            org_id = org.id
        return [
            KeyInfo(
                key_id=k.id,
                prefix=k.prefix,
                name=k.name,
                organization=k.organization.name,
                created_at=k.created_at.isoformat(),
                revoked=k.revoked_at is not None,
            )
            for k in repo.list_api_keys(session, organization_id=org_id)
        ]


def revoke_api_key(runtime: Runtime, *, key_id_or_prefix: str) -> None:
    with runtime.sessions.begin() as session:
        if repo.revoke_api_key(session, key_id_or_prefix=key_id_or_prefix) is None:
            raise NotFound(f"no single API key has id or prefix {key_id_or_prefix!r}", field="key")
    # Other replicas (and this process's cache of checked keys) learn of it at once.
    from xngin.services.serving import note_api_key_revoked

    note_api_key_revoked(runtime)


def organization_principal(runtime: Runtime, organization: str, *, actor: str = "cli") -> Principal:
    """Act for an organization by name (CLI and admin tasks); created on first use."""
    with runtime.sessions.begin() as session:
        org = repo.get_or_create_organization(session, organization)
        return Principal(organization_id=org.id, organization_name=org.name, api_key_id=actor)
