"""A new workspace's Prefect database starts as a copy of an empty one Prefect's own command migrated once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from components.adapters import prefect_template
from components.adapters.prefect_template import build_template, seed_database, template_path


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


@pytest.mark.integration
def test_the_template_is_migrated_once_and_every_new_workspace_gets_a_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(prefect_template.CACHE_VARIABLE, str(tmp_path / "cache"))
    built = build_template()  # `prefect server database upgrade` into the cache
    modified = built.stat().st_mtime_ns

    first, second = tmp_path / "one" / "prefect", tmp_path / "two" / "prefect"
    first.mkdir(parents=True), second.mkdir(parents=True)

    assert seed_database(first) and seed_database(second)
    assert built == template_path() and built.stat().st_mtime_ns == modified  # built once, copied twice
    assert _revision(first / "prefect.db") == _revision(built) != ""
    assert not seed_database(first)  # a workspace keeps the database it has


def test_a_database_of_the_users_own_gets_no_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(prefect_template.CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://db.example/prefect")

    assert not seed_database(tmp_path)
    assert not (tmp_path / "prefect.db").exists() and not (tmp_path / "cache").exists()


def test_a_template_that_cannot_be_built_leaves_the_server_to_migrate(tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv(prefect_template.CACHE_VARIABLE, str(blocked))

    assert not seed_database(tmp_path)
    assert not (tmp_path / "prefect.db").exists()
    assert "the server migrates a new one" in caplog.text
