"""`mltrain` refusing bad settings and outputs with one tidy line naming the variable, never a
traceback; `serve --help` showing where each default comes from."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphql_api.cli import app
from graphql_api.settings import Settings, SettingsError, load_settings
from tests.live_servers import MLTRAIN, ROOT, free_port


def run_mltrain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLTRAIN, *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a measurement
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MLTRAIN_PORT", "abc", ["valid integer"]),
        ("MLTRAIN_PORT", "0", ["greater than or equal to 1"]),
        ("MLTRAIN_PORT", "70000", ["less than or equal to 65535"]),
        ("MLTRAIN_MAX_QUERY_DEPTH", "-1", ["greater than or equal to 1"]),
        ("MLTRAIN_MAX_QUERY_DEPTH", "1e9", ["valid integer"]),
        ("MLTRAIN_MAX_ALIASES", "-5", ["greater than or equal to 0"]),
        ("MLTRAIN_MAX_TOKENS", "3", ["greater than or equal to 10"]),
        ("MLTRAIN_MAX_BODY_BYTES", "10", ["greater than or equal to 1024"]),
        ("MLTRAIN_MAX_CONNECTIONS_PER_KEY", "0", ["greater than or equal to 1"]),
        ("MLTRAIN_WS_KEEP_ALIVE_INTERVAL", "0", ["greater than 0"]),
        ("MLTRAIN_WS_KEEP_ALIVE_INTERVAL", "nan", ["MLTRAIN_WS_KEEP_ALIVE_INTERVAL"]),
        ("MLTRAIN_FEED_POLL_INTERVAL", "-1", ["greater than 0"]),
        ("MLTRAIN_SUBSCRIBER_BUFFER", "0", ["greater than or equal to 1"]),
        ("MLTRAIN_MONGODB_TIMEOUT", "0", ["greater than 0"]),
        ("MLTRAIN_MONGODB_TIMEOUT", "soon", ["valid number"]),
        ("MLTRAIN_MONGODB_DATABASE", "a/b", ["should match pattern"]),
        ("MLTRAIN_LOG_LEVEL", "loud", ["'debug'"]),
        ("MLTRAIN_GRAPHIQL", "maybe", ["valid boolean"]),
        ("MLTRAIN_ALLOWED_ORIGINS", "ftp:/x", ["Invalid origin"]),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(
    variable: str, value: str, words: list[str]
) -> None:
    result = run_mltrain("serve", "--port", str(free_port()), env={variable: value})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    (line,) = output.strip().splitlines()
    assert line.startswith(f"mltrain: cannot start: {variable}="), line
    for word in words:
        assert word in line, line


def test_several_bad_settings_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTRAIN_PORT", "abc")
    monkeypatch.setenv("MLTRAIN_MAX_QUERY_DEPTH", "-1")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "MLTRAIN_PORT='abc'" in str(refused.value)
    assert "MLTRAIN_MAX_QUERY_DEPTH='-1'" in str(refused.value)


def test_the_defaults_are_valid_and_levels_are_case_insensitive() -> None:
    assert Settings(log_level="WARNING").log_level == "warning"
    assert Settings().port == 8000


@pytest.mark.parametrize("missing", ["missing/schema.graphql", "a/b/c/schema.graphql"])
def test_export_schema_to_a_missing_folder_is_one_line(tmp_path: Path, missing: str) -> None:
    target = tmp_path / missing
    result = run_mltrain("export-schema", "--output", str(target))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert output.strip() == f"mltrain: cannot write {target}: No such file or directory"
    assert not target.exists()


def test_export_schema_onto_a_folder_is_one_line(tmp_path: Path) -> None:
    result = run_mltrain("export-schema", "--output", str(tmp_path))
    assert result.returncode == 2
    assert (result.stdout + result.stderr).strip().startswith(f"mltrain: cannot write {tmp_path}")


def test_serve_help_names_the_environment_variables() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "MLTRAIN_HOST" in result.output and "MLTRAIN_PORT" in result.output
    assert "bind ." not in result.output
