"""The control plane's tables (SQLAlchemy 2 typed ORM): users, groups and membership,
named stores, shares and their permissions, adapters and settings.

The schema itself is owned by the Alembic migrations in ``migrations/``; these classes
must describe the head revision (a test compares them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LEVELS = ("none", "read", "read-write", "admin")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    uid: Mapped[int] = mapped_column(Integer)
    gid: Mapped[int] = mapped_column(Integer)
    password_hash: Mapped[str] = mapped_column(String(255))
    nt_hash: Mapped[str] = mapped_column(String(32))  # what NTLMv2 needs; never the password
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    gid: Mapped[int] = mapped_column(Integer, unique=True)


class Membership(Base):
    __tablename__ = "memberships"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True)


class MetadataStore(Base):
    __tablename__ = "metadata_stores"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BlockStore(Base):
    __tablename__ = "block_stores"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Share(Base):
    __tablename__ = "shares"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    metadata_store: Mapped[str] = mapped_column(ForeignKey("metadata_stores.name"))
    block_store: Mapped[str] = mapped_column(ForeignKey("block_stores.name"))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ShareConfig keys


class SharePermission(Base):
    __tablename__ = "share_permissions"
    __table_args__ = (UniqueConstraint("share", "user_id", "group_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    share: Mapped[str] = mapped_column(ForeignKey("shares.name", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(16))


class Adapter(Base):
    __tablename__ = "adapters"
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    port: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
