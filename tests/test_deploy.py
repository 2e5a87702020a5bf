"""The recipes in deploy/: what can be checked without a container engine or a cluster.

No Docker engine and no Kubernetes run here, so neither file is built or
applied. Instead: both parse, the qactuar command line in each is one that
qactuar accepts (every flag exists, every value passes Config), the health
checks ask the HEALTH_PATH that command line sets, and the container's own
command, run here on loopback, serves and passes its own HEALTHCHECK.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml
from support import ROOT

from qactuar.cli import main as cli
from qactuar.config import Config, environment_settings, load_config

DEPLOY = os.path.join(ROOT, "deploy")


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Containerfile, continuation lines joined."""
    with open(os.path.join(DEPLOY, "Containerfile"), encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for line in fh if not line.lstrip().startswith("#")]
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in lines:
        if not line.strip() and not current:
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = current.partition(" ")
            assert word.isupper(), f"not an instruction: {current!r}"
            instructions.append((word, rest.strip()))
            current = ""
    return instructions


def one(instructions: list[tuple[str, str]], word: str) -> str:
    found = [rest for name, rest in instructions if name == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


def config_of(args: list[str]) -> Config:
    """The Config qactuar would run with, given ``args`` in the repository root."""
    ctx = cli.make_context("qactuar", list(args))  # an unknown flag or bad value exits 2
    settings = dict(ctx.params)
    settings.pop("config_path"), settings.pop("env_file")
    app = settings.pop("app")
    assert app is None  # the config's APPS are served
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()
             if v is not None and v != ()}
    return load_config(os.path.join(ROOT, "qactuar_config.json"), given)


def test_containerfile():
    instructions = containerfile()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    user = one(instructions, "USER")
    assert user not in ("root", "0")
    assert one(instructions, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(one(instructions, "ENTRYPOINT")) == ["qactuar"]
    config = config_of(json.loads(one(instructions, "CMD")))
    assert config.HEALTH_PATH and config.MODEL == "prefork"
    assert one(instructions, "EXPOSE") == str(config.PORT)
    check = one(instructions, "HEALTHCHECK")
    assert f"http://127.0.0.1:{config.PORT}{config.HEALTH_PATH}" in check
    # every file the build copies is in the repository
    for word, rest in instructions:
        if word == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert os.path.exists(os.path.join(ROOT, source)), source


def test_the_containers_command_serves_and_passes_its_healthcheck(spawn_qactuar):
    instructions = containerfile()
    args = json.loads(one(instructions, "CMD"))
    # loopback and a free port instead of 0.0.0.0:8000 (spawn_qactuar puts its own first)
    for flag in ("--host", "--port"):
        i = args.index(flag)
        del args[i:i + 2]
    server = spawn_qactuar(*args, cwd=ROOT, env={"QACTUAR_WORKERS": "1"})
    check = json.loads(one(instructions, "HEALTHCHECK").split(" CMD ", 1)[1])
    assert check[0] == "python"
    check = [sys.executable, *check[1:]]
    check[-1] = check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    assert subprocess.run(check, timeout=10).returncode == 0
    server.signal(15)
    assert server.wait() == 0


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    with open(os.path.join(DEPLOY, "kubernetes.yaml"), encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def test_kubernetes_deployment(manifests):
    kinds = {doc["kind"]: doc for doc in manifests}
    assert set(kinds) == {"Deployment", "Service"}
    deployment, service = kinds["Deployment"], kinds["Service"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    config = config_of(container["args"])
    assert config.MODEL == "prefork" and config.HEALTH_PATH
    # WORKERS from the CPU limit, as an environment variable qactuar accepts
    env = {item["name"]: item for item in container["env"]}
    assert env["QACTUAR_WORKERS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert environment_settings({"QACTUAR_WORKERS": "2"})["WORKERS"][0] == 2
    # readiness asks the path the server answers itself, on the port it listens on
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == config.HEALTH_PATH
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports[probe["port"]] == config.PORT
    # the grace period covers preStop, the drain and the master's 5 s margin
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + config.GRACEFUL_TIMEOUT + 5
    # the Service reaches these pods on that port
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports) | {
        config.PORT}
