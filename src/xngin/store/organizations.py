"""Repository for organizations and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from xngin.store.models import ApiKey, Organization, utcnow

KEY_PREFIX = "xk_"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_organization_by_name(session: Session, name: str) -> Organization | None:
    return session.scalar(sa.select(Organization).where(Organization.name == name))


def get_or_create_organization(session: Session, name: str) -> Organization:
    org = get_organization_by_name(session, name)
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def create_api_key(
    session: Session, *, organization: Organization, name: str = ""
) -> tuple[ApiKey, str]:
    """Make a new key; the plaintext is returned once and only its hash is stored."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        organization_id=organization.id,
        name=name,
        key_hash=hash_api_key(plaintext),
        prefix=plaintext[:10],
    )
    session.add(key)
    session.flush()
    return key, plaintext


def find_active_api_key(session: Session, plaintext: str) -> ApiKey | None:
    return session.scalar(
        sa.select(ApiKey).where(
            ApiKey.key_hash == hash_api_key(plaintext), ApiKey.revoked_at.is_(None)
        )
    )


def list_api_keys(session: Session, *, organization_id: str | None = None) -> Sequence[ApiKey]:
    query = sa.select(ApiKey).order_by(ApiKey.created_at)
    if organization_id is not None:
        query = query.where(ApiKey.organization_id == organization_id)
    return session.scalars(query).all()


def revoke_api_key(session: Session, *, key_id_or_prefix: str) -> ApiKey | None:
    """Revoke by id or by the shown prefix; returns None when nothing matches exactly once."""
    matches = session.scalars(
        sa.select(ApiKey).where(
            sa.or_(ApiKey.id == key_id_or_prefix, ApiKey.prefix == key_id_or_prefix)
        )
    ).all()
    if len(matches) != 1:
        return None
    key = matches[0]
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
