"""Alembic's environment: only ever run by datasources.migrations, on a connection it opened.

There is no offline (--sql) mode and no alembic.ini: `migrate(engine)` passes the connection,
inside the transaction that holds the migrators' lock, in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from datasources.registry import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the registry migrations with `pingan registry migrate` "
        "or datasources.migrations.migrate(engine)"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it: batch mode writes migrations that do so
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
