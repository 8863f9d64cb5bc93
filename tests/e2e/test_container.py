"""deploy/: the Containerfile and the compose demo, checked without docker.

The compose file parses and everything it builds from or mounts is in the repository; the
Containerfile's COPY, RUN and ENTRYPOINT/CMD run as a script here: its COPY lines make a
/src, its install line builds a fresh venv from it (packages from the configured index, as
`docker build` would: about 30 s), and its ENTRYPOINT/CMD serve /metrics against the
simulator the compose file starts the same way, then its HEALTHCHECK passes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, require_tool

DEPLOY = ROOT / "deploy"
CONTAINERFILE = DEPLOY / "Containerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
VENV = "/opt/opta-exporter"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def only(word: str) -> str:
    (args,) = [args for w, args in instructions() if w == word]
    return args


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_containerfile_is_slim_unprivileged_and_checked() -> None:
    assert only("FROM") == "python:3.11-slim"
    user = only("USER").split(":")[0]
    assert user not in {"0", "root"}
    assert only("EXPOSE") == "11234"
    assert "/-/healthy" in only("HEALTHCHECK")
    assert json.loads(only("ENTRYPOINT")) == [f"{VENV}/bin/opta-exporter"]
    for w, args in instructions():
        if w == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_compose_builds_and_mounts_only_what_the_repo_holds(compose: dict[str, Any]) -> None:
    base = COMPOSE.parent
    services = compose["services"]
    assert {"lmx", "exporter", "prometheus", "grafana"} <= services.keys()
    for name, service in services.items():
        if "build" in service:
            context = (base / service["build"]["context"]).resolve()
            assert context == ROOT, name
            assert (context / service["build"]["dockerfile"]).resolve() == CONTAINERFILE
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (base / source).exists(), (name, source)
    # the simulator as the compose demo starts it; the exporter follows it
    assert services["lmx"]["entrypoint"][1:] == ["-m", "lmx_simulator"]
    assert "http://lmx:1234" in services["exporter"]["command"]
    assert services["exporter"]["read_only"] is True


def test_compose_prometheus_loads_the_repo_rules_and_grafana_its_dashboards(
    compose: dict[str, Any],
) -> None:
    base = COMPOSE.parent
    services = compose["services"]
    mounts = {
        target: (base / source).resolve()
        for service in services.values()
        for volume in service.get("volumes", [])
        if (parts := volume.split(":"))[0].startswith(".")
        for source, target in [parts[:2]]
    }
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    repo_config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == repo_config["rule_files"]
    for rule_file in config["rule_files"]:  # relative to the config file's folder
        folder, name = rule_file.split("/")
        assert (mounts[f"/etc/prometheus/{folder}"] / name).is_file()
    (job,) = config["scrape_configs"]
    assert job["job_name"] == repo_config["scrape_configs"][0]["job_name"]
    assert job["static_configs"][0]["targets"] == ["exporter:11234"]
    providers = mounts["/etc/grafana/provisioning/dashboards"]
    (provider,) = yaml.safe_load((providers / "opta-lmx.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert sorted(p.name for p in dashboards.glob("*.json"))
    sources = mounts["/etc/grafana/provisioning/datasources"]
    (source,) = yaml.safe_load((sources / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"


def test_compose_prometheus_config_checks_with_the_repo_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    shutil.copy2(COMPOSE.parent / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")  # as compose mounts
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _here(text: str, src: Path, venv_dir: Path) -> str:
    return text.replace(VENV, str(venv_dir)).replace("/src", str(src))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(/src, the venv): the Containerfile's COPY and RUN lines, run here."""
    root = tmp_path_factory.mktemp("image")
    src, venv_dir = root / "src", root / "venv"
    src.mkdir()
    for w, args in instructions():
        if w == "COPY":
            *sources, dest = args.split()
            for source in sources:
                target = (
                    src
                    / Path(dest).relative_to("/src")
                    / (Path(source).name if dest.endswith("/") else "")
                )
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(ROOT / source, target)
    (run,) = [args for w, args in instructions() if w == "RUN"]
    python = getattr(sys, "_base_executable", sys.executable)
    for command in run.split(" && "):
        if command.startswith("useradd "):
            continue  # the image's user; this test runs as whoever runs it
        argv = shlex.split(_here(command, src, venv_dir))
        if argv[0] == "python":
            argv[0] = python
        if argv[:2] == ["rm", "-rf"]:
            argv[2:] = [str(p) for pattern in argv[2:] for p in Path("/").glob(pattern[1:])]
        subprocess.run(argv, check=True, capture_output=True, timeout=240, cwd=src)
    return src, venv_dir


@pytest.fixture
def simulator(image: tuple[Path, Path], compose: dict[str, Any]) -> Iterator[int]:
    src, venv_dir = image
    port = _free_port()
    service = compose["services"]["lmx"]
    argv = [_here(a, src, venv_dir) for a in service["entrypoint"]]
    argv += ["--host", "127.0.0.1", "--port", str(port)]  # compose: 0.0.0.0:1234
    proc = subprocess.Popen(argv, cwd=src, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("LMX simulator on ")
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_the_image_steps_serve_metrics_against_the_simulator(
    image: tuple[Path, Path], simulator: int
) -> None:
    src, venv_dir = image
    port = _free_port()
    entrypoint = [_here(a, src, venv_dir) for a in json.loads(only("ENTRYPOINT"))]
    cmd = json.loads(only("CMD"))
    assert cmd == ["--web.listen-address", ":11234"]
    argv = [*entrypoint, "--web.listen-address", f"127.0.0.1:{port}"]  # the CMD, on loopback
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTA_")}
    env["OPTA_EXPORTER_LMX_URL"] = f"http://127.0.0.1:{simulator}"
    proc = subprocess.Popen(argv, cwd=src, env=env, stderr=subprocess.DEVNULL)
    try:
        body = _poll(f"http://127.0.0.1:{port}/metrics", "lmx_", deadline=time.monotonic() + 30)
        assert "opta_exporter_" in body
        check = json.loads(re.sub(r"^.*?CMD ", "", only("HEALTHCHECK")))
        check = [_here(a, src, venv_dir).replace(":11234", f":{port}") for a in check]
        subprocess.run(check, check=True, timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def _poll(url: str, needle: str, deadline: float) -> str:
    body = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = bytes(response.read()).decode()
            if needle in body:
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed {needle!r}: {body[:500]}")
