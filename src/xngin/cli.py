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
    from xngin.services.runtime import Runtime

    return Runtime.start(_settings(data_dir))


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
