"""The `xngin` command end to end: demo on the embedded default, db, apikey, sheet, doctor."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from xngin.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XNGIN_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`xngin demo` as a user runs it: a real process serving on a loopback port."""
    data = tmp_path_factory.mktemp("demo")
    port = _free_port()
    env = {**os.environ, "XNGIN_SETTINGS_FILE": str(data / "none.json")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xngin", "demo", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=data,
    )
    key = None
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if m := re.match(r"API key: (\S+)", line):
            key = m.group(1)
            break
        assert time.monotonic() < deadline, "demo did not print its key in time"
    assert key, "demo exited without printing 'API key: ...'"
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    yield base, key
    proc.terminate()
    proc.wait(timeout=20)


def test_demo_serves_docs_and_healthy_stores(demo_server: tuple[str, str]) -> None:
    base, key = demo_server
    health = httpx.get(f"{base}/health")
    assert health.status_code == 200
    stores = health.json()["stores"]
    assert set(stores) == {"app_database", "event_store", "cache"}
    assert all(s["ok"] for s in stores.values()), stores
    docs = httpx.get(f"{base}/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert httpx.get(f"{base}/docs", follow_redirects=False).headers["location"] == "/api/docs"
    types = httpx.get(f"{base}/v1/participant-types", headers={"X-API-Key": key}).json()
    assert [t["name"] for t in types["items"]] == ["beneficiaries"]
    strata = httpx.get(
        f"{base}/v1/strata",
        params={"participant_type": "beneficiaries"},
        headers={"X-API-Key": key},
    ).json()
    region = next(f for f in strata["fields"] if f["field_name"] == "region")
    assert sum(v["count"] for v in region["values"]["distinct"]) >= 100_000


def test_demo_rerun_reuses_data_and_issues_a_new_key(tmp_path: Path) -> None:
    first = runner.invoke(app, ["demo", "--no-serve", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    warehouse = tmp_path / "warehouse.duckdb"
    stamp = warehouse.stat().st_mtime_ns
    second = runner.invoke(app, ["demo", "--no-serve", "--data-dir", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert warehouse.stat().st_mtime_ns == stamp
    keys = re.findall(r"API key: (\S+)", first.output + second.output)
    assert len(keys) == 2 and keys[0] != keys[1]


def test_db_commands_round_trip(data_dir: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    current = runner.invoke(app, ["db", "current"])
    head = re.search(r"head: (\S+)", current.output)
    assert head and f"current: {head.group(1)}" in current.output
    assert runner.invoke(app, ["db", "downgrade", "base"]).exit_code == 0
    assert "current: None" in runner.invoke(app, ["db", "current"]).output


def test_apikey_create_list_revoke(data_dir: Path) -> None:
    runner.invoke(app, ["db", "upgrade"])
    created = runner.invoke(app, ["apikey", "create", "--organization", "acme", "--name", "ci"])
    assert created.exit_code == 0
    plaintext = re.search(r"API key: (\S+)", created.output).group(1)  # type: ignore[union-attr]
    listed = runner.invoke(app, ["apikey", "list"])
    assert plaintext[:10] in listed.output and plaintext not in listed.output
    assert runner.invoke(app, ["apikey", "revoke", plaintext[:10]]).exit_code == 0
    assert "yes" in runner.invoke(app, ["apikey", "list"]).output
    missing = runner.invoke(app, ["apikey", "revoke", "nope"])
    assert missing.exit_code == 1


def test_sheet_bootstrap_then_register(data_dir: Path) -> None:
    import duckdb

    runner.invoke(app, ["db", "upgrade"])
    wh = data_dir / "wh.duckdb"
    with duckdb.connect(str(wh)) as conn:
        conn.execute(
            "CREATE TABLE kids AS SELECT range AS kid_id, 'school ' || (range % 5) AS school, "
            "range % 2 = 0 AS girl, (range % 17) * 1.5 AS score FROM range(500)"
        )
    added = runner.invoke(app, ["datasource", "add", "--name", "wh", "--url", f"duckdb:///{wh}"])
    assert added.exit_code == 0 and "ok" in added.output, added.output
    out = data_dir / "kids.csv"
    boot = runner.invoke(
        app, ["sheet", "bootstrap", "--datasource", "wh", "--table", "kids", "--out", str(out)]
    )
    assert boot.exit_code == 0, boot.output
    text = out.read_text()
    assert text.splitlines()[0].startswith("field_name,data_type")
    assert "kid_id,integer,,TRUE" in text
    registered = runner.invoke(
        app,
        [
            "participant-type",
            "register",
            "--name",
            "kids",
            "--datasource",
            "wh",
            "--table",
            "kids",
            "--sheet",
            str(out),
        ],
    )
    assert registered.exit_code == 0, registered.output
    assert "id kid_id" in registered.output
    bad = data_dir / "bad.csv"
    bad.write_text(
        text.replace("\nscore,", "\nscores,").replace(
            "kid_id,integer,,TRUE", "kid_id,integer,,FALSE"
        )
    )
    rejected = runner.invoke(
        app,
        [
            "participant-type",
            "register",
            "--name",
            "k2",
            "--datasource",
            "wh",
            "--table",
            "kids",
            "--sheet",
            str(bad),
        ],
    )
    assert rejected.exit_code == 1
    assert "scores" in rejected.output and "unique" in rejected.output.lower()


def test_doctor_names_the_broken_datasource(data_dir: Path) -> None:
    runner.invoke(app, ["db", "upgrade"])
    ok = runner.invoke(app, ["doctor"])
    assert ok.exit_code == 0, ok.output
    runner.invoke(
        app,
        [
            "datasource",
            "add",
            "--name",
            "gone",
            "--url",
            "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none",
        ],
    )
    broken = runner.invoke(app, ["doctor"])
    assert broken.exit_code == 1
    assert "datasource gone" in broken.output
    assert "hunter2" not in broken.output
