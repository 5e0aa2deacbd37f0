"""Database URLs as the engine hands them to SQLAlchemy and Alembic."""

from __future__ import annotations


def normalise_url(url: str) -> str:
    # Users write postgresql://...; we ship psycopg 3, not psycopg2.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
