"""The deployment files agree with the code: Dockerfile, .dockerignore, docker-compose.yml,
render.yaml and env.example. Static checks only: no Docker engine, no network."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from computer_use import cli
from computer_use.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARS = frozenset(name.upper() for name in Settings.model_fields)
# Set by docker-compose.yml itself, whatever .env says: the image's volume, all interfaces
# inside the container, the published port.
COMPOSE_FIXED = {"DATA_DIR": "/data", "HOST": "0.0.0.0", "PORT": "8000"}
COMPOSE_POSTGRES_URL = "postgresql://postgres:postgres@postgres:5432/computer_use"
HEALTH_PATH = "/api/v1/health"


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No setting from the caller's environment or a stray ./.env leaks into Settings()."""
    for key in list(os.environ):
        if key.upper() in SETTINGS_VARS:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield monkeypatch


def comparable(settings: Settings) -> dict[str, Any]:
    values = settings.model_dump()
    for name, value in values.items():
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    # config.py reads an empty ANTHROPIC_API_KEY as an empty key rather than None; both mean
    # "no server key, clients bring their own" for the purpose of these files.
    if values["anthropic_api_key"] == "":
        values["anthropic_api_key"] = None
    return values


def defaults() -> dict[str, Any]:
    return comparable(Settings(_env_file=None))


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as a process with these variables (and no .env) would read them; the variables
    are unset again afterwards. Use with `clean_env` so nothing else leaks in."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return Settings(_env_file=None)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"use ENV KEY=value, not the legacy form: {args}"
                env[key] = value
    return env


def final_command() -> list[str]:
    """The argv the container runs by default (the last CMD, through `sh -c` if used)."""
    commands = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    entrypoints = [args for k, args in dockerfile_instructions() if k == "ENTRYPOINT"]
    # tini is the only entry point we accept: it runs CMD unchanged as its child and reaps orphans.
    assert all(json.loads(e) == ["/usr/bin/tini", "--"] for e in entrypoints), entrypoints
    argv: list[str] = json.loads(commands[-1])
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
        if argv[0] == "exec":
            argv = argv[1:]
    return argv


def env_example() -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for line in (ROOT / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            pairs.append((key.strip(), value))
    return pairs


@pytest.fixture(scope="module")
def compose_bin() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip(
            "docker-compose is not installed (scripts/install-system-deps.sh --with-test adds it)"
        )
    return found


def run_compose(
    compose_bin: str, tmp_path: Path, *args: str, env_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """docker-compose on our file with a clean environment: no shell variables, no ./.env."""
    if env_file is None:
        env_file = tmp_path / "empty.env"
        env_file.write_text("")
    return subprocess.run(
        [
            compose_bin,
            "--file",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            *args,
        ],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def compose_config(compose_bin: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    result = run_compose(compose_bin, tmp_path, *args, "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def render_blueprint() -> dict[str, Any]:
    blueprint: dict[str, Any] = yaml.safe_load((ROOT / "render.yaml").read_text())
    return blueprint


def render_web_service() -> dict[str, Any]:
    web = [s for s in render_blueprint()["services"] if s.get("type") == "web"]
    assert len(web) == 1, "render.yaml should have exactly one web service"
    service: dict[str, Any] = web[0]
    return service


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_builds_on_bookworm_with_the_shared_system_deps_script() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    assert "bookworm" in instructions[0][1]
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any(re.search(r"\bscripts/install-system-deps\.sh\b", run) for run in runs)
    assert any(re.search(r"pip install\b.*\s(-e\s+)?\.(\s|$)", run) for run in runs), (
        "the project should be installed from pyproject.toml with pip"
    )


def test_dockerfile_copies_only_paths_that_exist() -> None:
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            *sources, _destination = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path in the repo"


def test_dockerfile_default_command_serves_on_all_interfaces_at_port_and_asks_for_tokens(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = dockerfile_env()
    assert env.get("PORT") == "8000"
    assert env.get("DATA_DIR") == "/data"
    assert "API_TOKENS" not in env and "ALLOW_UNAUTHENTICATED" not in env
    exposed = [args for keyword, args in dockerfile_instructions() if keyword == "EXPOSE"]
    assert exposed == ["8000"]
    volumes = [args for keyword, args in dockerfile_instructions() if keyword == "VOLUME"]
    assert volumes and "/data" in volumes[0]

    argv = final_command()
    assert argv[0] == "computer-use"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["computer-use"] == "computer_use.cli:main"
    raw = " ".join(argv)
    assert re.search(r"--port \$(\{PORT(:-8000)?\}|PORT\b)", raw), "the port must come from $PORT"
    assert "--host 0.0.0.0" in raw

    # The real CLI accepts the command with Render's PORT; without API_TOKENS it refuses in one
    # line naming API_TOKENS; with them it serves (start-up then applies migrations).
    render_port = "10000"
    expanded = [re.sub(r"\$\{PORT(:-\d+)?\}|\$PORT\b", render_port, a) for a in argv]
    for key, value in env.items():
        if key in SETTINGS_VARS:
            clean_env.setenv(key, value)
    clean_env.setenv("PORT", render_port)
    served: list[tuple[Settings, tuple[str, int]]] = []

    def fake_run(server: Any) -> None:
        served.append((server.config.app.state.settings, (server.config.host, server.config.port)))

    clean_env.setattr(cli._StreamClosingServer, "run", fake_run)
    # The instance lock is host-wide and held until the process exits: not from a test process.
    clean_env.setattr(cli, "_lock_instance", lambda settings: None)
    with pytest.raises(SystemExit) as refused:
        cli.main(expanded[1:])
    assert refused.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "API_TOKENS" in err, err
    assert served == []

    clean_env.setenv("API_TOKENS", "a-long-random-token")
    cli.main(expanded[1:])
    [(settings, bound)] = served
    assert bound == ("0.0.0.0", int(render_port))
    assert settings.data_dir == Path("/data") and settings.auto_migrate


def test_dockerfile_healthcheck_polls_the_health_route() -> None:
    checks = [args for keyword, args in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert HEALTH_PATH in checks[0]
    assert "PORT" in checks[0], "the health check must follow $PORT"


def test_health_path_is_a_route_of_the_app(clean_env: pytest.MonkeyPatch) -> None:
    from computer_use.main import create_app

    app = create_app(Settings(_env_file=None))
    assert HEALTH_PATH in app.openapi()["paths"]


def test_dockerignore_keeps_secrets_and_local_state_out_and_build_inputs_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for must_exclude in (".env", ".venv", "data", ".git"):
        assert must_exclude in patterns
    for needed in (
        "pyproject.toml",
        "README.md",
        "alembic.ini",
        "src",
        "src/computer_use/cli.py",
        "src/computer_use/migrations/env.py",
        "scripts",
        "scripts/install-system-deps.sh",
    ):
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(needed, p)]
        assert not hits, f".dockerignore drops {needed} (via {hits}), which the build needs"


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_file_is_valid(compose_bin: str, tmp_path: Path) -> None:
    result = run_compose(compose_bin, tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr
    result = run_compose(compose_bin, tmp_path, "--profile", "postgres", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_accepts_env_example_as_its_env_file(compose_bin: str, tmp_path: Path) -> None:
    result = run_compose(compose_bin, tmp_path, "config", "-q", env_file=ROOT / "env.example")
    assert result.returncode == 0, result.stderr


def test_compose_app_defaults_match_settings(
    compose_bin: str, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    app = compose_config(compose_bin, tmp_path)["services"]["app"]
    environment: dict[str, str | None] = app["environment"]
    assert set(environment) == SETTINGS_VARS, "every setting should be settable through compose"
    for key, value in COMPOSE_FIXED.items():
        assert environment[key] == value
    # Passed through only when set: an unset key must not become an empty server key.
    assert environment["ANTHROPIC_API_KEY"] is None

    passed = {k: v for k, v in environment.items() if v is not None and k not in COMPOSE_FIXED}
    got = comparable(settings_from(passed))
    want = defaults()
    for key in COMPOSE_FIXED:
        got.pop(key.lower())
        want.pop(key.lower())
    assert got == want

    assert app["privileged"] is True
    assert any(str(v).endswith(":/data") or ":/data:" in str(v) for v in app["volumes"])
    assert any(str(p).startswith("127.0.0.1:8000:8000") for p in app["ports"])
    assert "postgres" not in (app.get("depends_on") or {}), (
        "app must start without the optional postgres profile"
    )


def test_compose_postgres_is_opt_in_and_matches_the_documented_url(
    compose_bin: str, tmp_path: Path
) -> None:
    postgres = compose_config(compose_bin, tmp_path, "--profile", "postgres")["services"][
        "postgres"
    ]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"].startswith("postgres:16")
    env = postgres["environment"]
    url = (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{env['POSTGRES_DB']}"
    )
    assert url == COMPOSE_POSTGRES_URL
    assert COMPOSE_POSTGRES_URL in (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    assert COMPOSE_POSTGRES_URL in (ROOT / "docker-compose.yml").read_text()
    settings = Settings(_env_file=None, database_url=COMPOSE_POSTGRES_URL)
    assert settings.async_database_url.startswith("postgresql+asyncpg://")


# --- render.yaml ---------------------------------------------------------------------------


def test_render_blueprint_runs_the_dockerfile_with_the_health_check() -> None:
    web = render_web_service()
    assert web["runtime"] == "docker"
    assert (ROOT / web.get("dockerContext", ".")).resolve() == ROOT
    assert (ROOT / web["dockerfilePath"]).resolve() == ROOT / "Dockerfile"
    assert web["healthCheckPath"] == HEALTH_PATH
    assert "dockerCommand" not in web, "the image's CMD (serve on $PORT) is used"


def test_render_blueprint_env_vars_are_settings_wired_to_the_disk_and_database(
    clean_env: pytest.MonkeyPatch,
) -> None:
    blueprint = render_blueprint()
    web = render_web_service()
    env_vars = {item["key"]: item for item in web["envVars"]}
    assert set(env_vars) <= SETTINGS_VARS, "render.yaml sets variables the service ignores"

    assert env_vars["ANTHROPIC_API_KEY"].get("sync") is False
    assert "value" not in env_vars["ANTHROPIC_API_KEY"]
    # Public on Render: tokens are generated (a non-loopback bind refuses to start without).
    assert env_vars["API_TOKENS"].get("generateValue") is True
    assert "ALLOW_UNAUTHENTICATED" not in env_vars
    assert env_vars["ALLOWED_HOSTS"]["value"]

    from_db = env_vars["DATABASE_URL"]["fromDatabase"]
    assert from_db["property"] == "connectionString"
    assert from_db["name"] in {db["name"] for db in blueprint["databases"]}

    assert env_vars["DATA_DIR"]["value"] == web["disk"]["mountPath"]
    plain = {k: str(v["value"]) for k, v in env_vars.items() if "value" in v}
    settings = settings_from(plain)
    assert settings.data_dir == Path(web["disk"]["mountPath"])


# --- env.example ---------------------------------------------------------------------------


def test_env_example_lists_exactly_the_settings() -> None:
    keys = [key for key, _ in env_example()]
    assert len(keys) == len(set(keys)), "a variable appears twice in env.example"
    assert set(keys) == SETTINGS_VARS


def test_env_example_values_are_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    from_file = comparable(Settings(_env_file=ROOT / "env.example"))
    assert from_file == defaults()
    as_env = comparable(settings_from(dict(env_example())))
    assert as_env == defaults()


def test_env_example_explains_every_variable() -> None:
    previous = ""
    for line in (ROOT / "env.example").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key = stripped.partition("=")[0]
            # A group of variables may share the comment right above it.
            assert previous.startswith("#") or re.match(r"^[A-Z_]+=", previous), (
                f"{key} has no comment above it"
            )
        previous = stripped


def test_env_example_leaves_the_api_key_empty_and_mentions_byok() -> None:
    assert dict(env_example())["ANTHROPIC_API_KEY"] == ""
    assert "X-Anthropic-API-Key" in (ROOT / "env.example").read_text()
