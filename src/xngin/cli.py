"""The `xngin` command: demo, serve, db, apikey, sheet, doctor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from xngin.errors import XnginError

app = typer.Typer(
    help="xngin: experiments on participants who live in your warehouse.", no_args_is_help=True
)
db_app = typer.Typer(help="Migrate the app database.", no_args_is_help=True)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
sheet_app = typer.Typer(help="Participant-type config sheets.", no_args_is_help=True)
ptype_app = typer.Typer(help="Register and inspect participant types.", no_args_is_help=True)
ds_app = typer.Typer(help="Register and check datasources.", no_args_is_help=True)
app.add_typer(sheet_app, name="sheet")
app.add_typer(ptype_app, name="participant-type")
app.add_typer(ds_app, name="datasource")

OrganizationOption = Annotated[
    str, typer.Option("--organization", "-o", help="Organization to act for.")
]

console = Console()
err_console = Console(stderr=True)


def _settings(data_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from xngin.settings import Settings

    try:
        return Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except XnginError as exc:
        err_console.print(f"[red]settings:[/red] {exc.message}")
        raise typer.Exit(2) from exc


def _runtime(data_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from xngin.services.catalog import sync_declared_datasources
    from xngin.services.runtime import Runtime

    runtime = Runtime.start(_settings(data_dir))
    sync_declared_datasources(runtime)
    return runtime


def _fail(exc: XnginError) -> typer.Exit:
    err_console.print(f"[red]error[/red]{f' ({exc.field})' if exc.field else ''}: {exc.message}")
    return typer.Exit(1)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(help="Where the embedded stores live.")] = Path(
        "xngin-data"
    ),
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Prepare everything, then exit.")
    ] = False,
) -> None:
    """Run xngin on the embedded default: SQLite, DuckDB and an in-process cache. No servers."""
    import uvicorn

    from xngin.api.app import create_app
    from xngin.services.demo import DEMO_PARTICIPANT_TYPE, DEMO_ROWS, prepare_demo

    runtime = _runtime(data_dir)
    with console.status(
        f"Preparing the demo in {data_dir} (first run writes {DEMO_ROWS:,} participants)…"
    ):
        setup = prepare_demo(runtime)
    base = f"http://{host}:{port}"
    console.print(
        f"[green]Demo ready[/green] — participant type [bold]{DEMO_PARTICIPANT_TYPE}[/bold] "
        f"in {setup.warehouse_path}"
    )
    console.print(f"API docs: {base}/api/docs")
    console.print(f"Web UI:   {base}/ui")
    console.print(f"Health:   {base}/health")
    # Plain line so scripts can pick the key up.
    print(f"API key: {setup.api_key}", flush=True)
    if no_serve:
        runtime.close()
        return
    uvicorn.run(create_app(runtime=runtime), host=host, port=port, log_level="info")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the API with settings from the environment, .env and xngin.settings.json."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "xngin.api.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=True,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from xngin.store.db import current_revision, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    upgrade(url, revision)
    console.print(f"app database at revision {current_revision(url)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target, e.g. -1 or base.")]) -> None:
    """Revert migrations down to REVISION."""
    from xngin.store.db import current_revision, downgrade

    url = _settings().resolved_database_url
    downgrade(url, revision)
    console.print(f"app database at revision {current_revision(url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the app database's revision and the code's head."""
    from xngin.store.db import current_revision, head_revision

    url = _settings().resolved_database_url
    console.print(f"current: {current_revision(url)}  head: {head_revision(url)}")


@apikey_app.command("create")
def apikey_create(
    organization: Annotated[str, typer.Option(help="Organization the key acts for.")] = "default",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
) -> None:
    """Create a key. It is shown once; only its hash is stored."""
    from xngin.services.access import issue_api_key

    runtime = _runtime()
    try:
        key = issue_api_key(runtime, organization=organization, name=name)
    finally:
        runtime.close()
    console.print(f"key id {key.key_id} for organization {key.organization}")
    print(f"API key: {key.plaintext}")


@apikey_app.command("list")
def apikey_list(organization: Annotated[str | None, typer.Option()] = None) -> None:
    """List keys (prefixes only)."""
    from xngin.services.access import list_api_keys

    runtime = _runtime()
    try:
        keys = list_api_keys(runtime, organization=organization)
    except XnginError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    table = Table("id", "prefix", "name", "organization", "created", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.prefix + "…",
            k.name,
            k.organization,
            k.created_at,
            "yes" if k.revoked else "",
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke a key: it gets 401 from then on."""
    from xngin.services.access import revoke_api_key

    runtime = _runtime()
    try:
        revoke_api_key(runtime, key_id_or_prefix=key)
    except XnginError as exc:
        err_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    console.print(f"revoked {key}")


@ds_app.command("add")
def datasource_add(
    name: Annotated[str, typer.Option(help="Datasource name.")],
    url: Annotated[str, typer.Option(help="SQLAlchemy URL, or =secret:NAME.")],
    organization: OrganizationOption = "default",
) -> None:
    """Register (or replace) a warehouse and check that it answers."""
    from xngin.services.access import organization_principal
    from xngin.services.catalog import register_datasource

    runtime = _runtime()
    try:
        principal = organization_principal(runtime, organization)
        with runtime.sessions.begin() as session:
            info = register_datasource(runtime, session, principal, name=name, url=url, options={})
    except XnginError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    console.print(f"datasource {info.name} ({info.dialect}): {info.status}")


@ds_app.command("list")
def datasource_list(organization: OrganizationOption = "default") -> None:
    """List datasources with a connection check."""
    from xngin.services.access import organization_principal
    from xngin.services.catalog import check_all_datasources

    runtime = _runtime()
    try:
        organization_principal(runtime, organization)
        results = check_all_datasources(runtime)
    finally:
        runtime.close()
    table = Table("datasource", "dialect", "status")
    for r in results:
        table.add_row(r.name, r.kind, "ok" if r.ok else r.detail)
    console.print(table)


@sheet_app.command("bootstrap")
def sheet_bootstrap(
    datasource: Annotated[str, typer.Option(help="Datasource holding the table.")],
    table: Annotated[str, typer.Option(help="Table or view, one row per participant.")],
    out: Annotated[Path | None, typer.Option(help="Write the CSV here (default: stdout).")] = None,
    organization: OrganizationOption = "default",
) -> None:
    """Propose a config sheet from the table's schema and values, as CSV to edit."""
    from xngin.services.access import organization_principal
    from xngin.services.catalog import bootstrap_sheet
    from xngin.sheets import write_sheet_csv, write_sheet_file

    runtime = _runtime()
    try:
        principal = organization_principal(runtime, organization)
        with err_console.status(f"Reading {table} in {datasource}…"), runtime.sessions() as session:
            sheet = bootstrap_sheet(
                runtime, session, principal, datasource=datasource, table_name=table
            )
    except XnginError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    if out is None:
        print(write_sheet_csv(sheet), end="")
    else:
        write_sheet_file(sheet, out)
        err_console.print(
            f"wrote {len(sheet.fields)} rows to {out}; mark the roles, then run "
            f"`xngin participant-type register --sheet {out} ...`"
        )


@ptype_app.command("register")
def participant_type_register(
    name: Annotated[str, typer.Option(help="Participant type name.")],
    datasource: Annotated[str, typer.Option(help="Datasource holding the table.")],
    table: Annotated[str, typer.Option(help="Table or view, one row per participant.")],
    sheet: Annotated[str, typer.Option(help="CSV file path or Google Sheet URL.")],
    organization: OrganizationOption = "default",
) -> None:
    """Register a participant type from its config sheet (every problem reported at once)."""
    from xngin.services.access import organization_principal
    from xngin.services.catalog import register_participant_type

    runtime = _runtime()
    try:
        principal = organization_principal(runtime, organization)
        with runtime.sessions.begin() as session:
            pt, warnings = register_participant_type(
                runtime,
                session,
                principal,
                name=name,
                datasource=datasource,
                table_name=table,
                sheet_url=sheet,
                allow_local_sheet=True,
            )
            summary = (
                f"participant type {pt.name}: {len(pt.fields)} fields, id {pt.unique_id_field}"
            )
    except XnginError as exc:
        raise _fail(exc) from exc
    finally:
        runtime.close()
    console.print(summary)
    for w in warnings:
        console.print(f"[yellow]warning[/yellow] row {w.row} {w.field or ''}: {w.message}")


@app.command()
def doctor() -> None:
    """Check every configured store and datasource and say what is wrong."""
    from xngin.services.doctor import run_checks

    runtime = _runtime()
    try:
        results = run_checks(runtime)
    finally:
        runtime.close()
    table = Table("check", "kind", "status", "detail")
    for r in results:
        table.add_row(r.name, r.kind, "[green]ok[/green]" if r.ok else "[red]FAIL[/red]", r.detail)
    console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - entry point for `python -m xngin`
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
