"""The Alembic migrations: up and down on an empty database, and in step with the models."""

import asyncio
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import async_database_url, downgrade, migrate, migrations_dir
from app.models import Base

VERSION_TABLE = {"alembic_version", "alembic_version_pkc"}


async def _relations(url: str) -> set[str]:
    """Every table, index and sequence in the public schema."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            """
            SELECT c.relname FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public'
            """
        )
    finally:
        await connection.close()
    return {row["relname"] for row in rows}


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def _version(url: str) -> str | None:
    connection = await asyncpg.connect(url)
    try:
        version: str | None = await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    return version


def _head() -> str | None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(config).get_current_head()


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_creates_every_table_at_head(empty_database: str) -> None:
    await asyncio.to_thread(migrate, empty_database)
    assert await _tables(empty_database) == set(Base.metadata.tables) | {"alembic_version"}
    assert await _version(empty_database) == _head()


async def test_upgrade_twice_is_a_no_op(empty_database: str) -> None:
    await asyncio.to_thread(migrate, empty_database)
    before = await _relations(empty_database)
    await asyncio.to_thread(migrate, empty_database)
    assert await _relations(empty_database) == before
    assert await _version(empty_database) == _head()


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(
    empty_database: str,
) -> None:
    await asyncio.to_thread(migrate, empty_database)
    migrated = await _relations(empty_database)
    await asyncio.to_thread(downgrade, empty_database, "base")
    # Only Alembic's own (now empty) version table is left: no table, index or sequence.
    assert await _relations(empty_database) <= VERSION_TABLE
    assert await _version(empty_database) is None
    await asyncio.to_thread(migrate, empty_database)
    assert await _relations(empty_database) == migrated


async def test_models_match_the_migrated_schema(empty_database: str) -> None:
    await asyncio.to_thread(migrate, empty_database)
    engine = create_async_engine(async_database_url(empty_database))
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    assert diff == []
