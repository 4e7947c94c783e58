"""deploy/kubernetes/: valid Kubernetes objects, settings the app reads, a hardened pod.

Every manifest is validated against the Kubernetes schemas shipped in ``kubernetes-validate``
(strict: an unknown or misspelt field fails; no network). Every environment variable the
manifests set is checked against what ``dashboard.settings`` reads, found by loading settings
from an environment holding only that variable: a name the app ignores leaves them unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from dashboard.devstore import start_devstore
from dashboard.settings.errors import SECRET_NAMES, ConfigError
from dashboard.settings.load import load_settings
from dashboard.web.app import create_app
from tests.support.dockerfile import image_cmd

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
K8S_VERSION = kubernetes_validate.latest_version()


# --------------------------------------------------------------------------- loading


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())


def _documents() -> list[tuple[str, dict[str, Any]]]:
    """(file, object) for every object the kustomization lists."""
    found = []
    for name in _kustomization()["resources"]:
        for doc in yaml.safe_load_all((MANIFESTS / name).read_text()):
            if doc:
                found.append((name, doc))
    return found


DOCS = _documents()


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for _, d in DOCS if d["kind"] == kind
               and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def _workloads() -> list[dict[str, Any]]:
    return [d for _, d in DOCS if d["kind"] in ("Deployment", "CronJob")]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return containers[0]


def _env_settings(container: dict[str, Any]) -> dict[str, str | None]:
    """Every env var name the container gets, with its literal value (None: from a Secret).
    envFrom ConfigMaps and Secrets must be defined in the manifests, so their keys count."""
    names: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = _one("ConfigMap", source["configMapRef"]["name"]).get("data", {})
            names.update({key: str(value) for key, value in data.items()})
        elif "secretRef" in source:
            secret = _one("Secret", source["secretRef"]["name"])
            names.update(dict.fromkeys({**secret.get("data", {}), **secret.get("stringData", {})}))
        else:
            raise AssertionError(f"unexpected envFrom source {source}")
    for item in container.get("env", []):
        names[item["name"]] = item.get("value")
    return names


def _image_env_names() -> set[str]:
    """Environment variables the image's CMD reads itself (``${GUNICORN_WORKERS:-2}``)."""
    return set(re.findall(r"\$\{(\w+)", " ".join(image_cmd())))


# --------------------------------------------------------------------------- schemas


def test_the_kustomization_lists_every_manifest_in_the_directory():
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = {d["kind"] for _, d in DOCS}
    assert {"Deployment", "Service", "Ingress", "ConfigMap", "Secret", "CronJob"} <= kinds


@pytest.mark.parametrize("doc", [d for _, d in DOCS],
                         ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_every_manifest_is_a_valid_kubernetes_object(doc):
    # strict: additionalProperties are refused, so a misspelt field is an error, not ignored
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field_and_a_wrong_type():
    deployment = json.loads(json.dumps(_one("Deployment")))
    container = _container(deployment)
    container["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_directory_with_one_image_everywhere():
    built = subprocess.run(["kubectl", "kustomize", str(MANIFESTS)], capture_output=True,
                           text=True, check=False)
    assert built.returncode == 0, built.stderr
    objects = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(objects) == len(DOCS)
    image = _kustomization()["images"][0]
    expected = f"{image['name']}:{image['newTag']}"
    images = {_container(d)["image"] for d in objects if d["kind"] in ("Deployment", "CronJob")}
    assert images == {expected}


# --------------------------------------------------------------------------- settings


_BASELINE = load_settings(environ={})
#: values tried on a name whose manifest value leaves the settings at their default
_PROBES = ("zz-recognisable-7", "7", "true", "false", "/zz", "http://zz.example:7",
           "redis://zz.example:6379/7")


def _app_reads(name: str, value: str | None) -> bool:
    """Whether ``dashboard.settings`` reads the env var ``name``: settings built from an
    environment holding only it differ from the defaults, or refuse its value."""
    for candidate in ((value,) if value else ()) + _PROBES:
        try:
            settings = load_settings(environ={name: candidate})
        except ConfigError:
            return True  # the empty environment loads, so this value was read and refused
        if settings != _BASELINE:
            return True
    return False


def test_the_setting_detector_tells_read_names_from_ignored_ones():
    assert _app_reads("Dashboard__ReadOnly", "false")  # the default value: found by the probes
    assert _app_reads("mesh__keyvalue__toskastore__baseurl", None)  # .NET: any case
    assert not _app_reads("Dashboard__NoSuchSetting", "x")
    assert not _app_reads("Mesh__KeyValue__ToskaStore__AuthTokens", "x")
    assert not _app_reads("GUNICORN_WORKERS", "2")


def _all_env() -> list[tuple[str, str, str | None]]:
    return sorted({(w["metadata"]["name"], name, value)
                   for w in _workloads()
                   for name, value in _env_settings(_container(w)).items()})


@pytest.mark.parametrize(("workload", "name", "value"), _all_env(),
                         ids=[f"{w}:{n}" for w, n, _ in _all_env()])
def test_every_env_var_the_manifests_set_is_read_by_the_app_or_the_image(workload, name, value):
    assert name in _image_env_names() or _app_reads(name, value), (
        f"{workload} sets {name}, which neither dashboard.settings nor the image's CMD reads")


def test_the_image_reads_the_gunicorn_variables_the_deployment_sets():
    env = _env_settings(_container(_one("Deployment")))
    assert {"GUNICORN_WORKERS", "GUNICORN_THREADS"} <= _image_env_names()
    assert {"GUNICORN_WORKERS", "GUNICORN_THREADS"} <= set(env)


def test_the_configmap_is_a_valid_configuration_for_the_ingress_path():
    data = {k: str(v) for k, v in _one("ConfigMap", "kv-dashboard-config")["data"].items()}
    settings = load_settings(environ=data)
    assert settings.provider == "toskastore"
    ingress_path = _one("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["path"]
    assert settings.dashboard.path_base == ingress_path == "/kv"
    assert settings.dashboard.forwarded_proxies == 1
    # two replicas share sessions and login counters only through one Redis
    for url in (settings.dashboard.session_storage, settings.dashboard.rate_limit_storage):
        assert url is not None and url.startswith(("redis://", "rediss://"))


def test_the_configmaps_single_sign_on_example_names_its_proxies_and_not_loopback():
    import ipaddress

    text = (MANIFESTS / "configmap.yaml").read_text()
    example = re.findall(r"(?m)^  # (Dashboard__TrustedAuth\w+: .*)$", text)
    assert {line.split(":")[0] for line in example} >= {
        "Dashboard__TrustedAuthHeader", "Dashboard__TrustedAuthProxies"}
    data = {k: str(v) for k, v in _one("ConfigMap", "kv-dashboard-config")["data"].items()}
    uncommented = {**data, **yaml.safe_load("\n".join(example))}
    settings = load_settings(environ=uncommented).dashboard
    assert settings.trusted_auth_header == "X-Forwarded-User"
    assert settings.trusted_auth_proxies
    for network in map(ipaddress.ip_network, settings.trusted_auth_proxies):
        assert not network.is_loopback and network.prefixlen > 0
    # the proxy list is what makes the header usable: without it the pod would not start
    without = {k: v for k, v in uncommented.items() if k != "Dashboard__TrustedAuthProxies"}
    with pytest.raises(ConfigError, match="Dashboard__TrustedAuthProxies"):
        load_settings(environ=without)


def test_secret_settings_come_from_secrets_never_from_literals():
    for workload in _workloads():
        container = _container(workload)
        for item in container.get("env", []):
            if item["name"].split("__")[-1].lower() in SECRET_NAMES:
                assert "secretKeyRef" in item.get("valueFrom", {}), item["name"]
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = _one("ConfigMap", source["configMapRef"]["name"])["data"]
                assert not [k for k in data if k.split("__")[-1].lower() in SECRET_NAMES]
    env = {e["name"]: e for e in _container(_one("Deployment"))["env"]}
    assert env["Mesh__KeyValue__ToskaStore__AuthToken"]["valueFrom"]["secretKeyRef"] == {
        "name": "toskastore-token", "key": "token"}
    ref = env["Dashboard__SecretKey"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in _one("Secret", ref["name"])["stringData"]


def test_the_placeholder_secret_key_is_refused_so_it_never_goes_live():
    ref = {e["name"]: e for e in _container(_one("Deployment"))["env"]}["Dashboard__SecretKey"]
    ref = ref["valueFrom"]["secretKeyRef"]
    placeholder = _one("Secret", ref["name"])["stringData"][ref["key"]]
    settings = load_settings(environ={"Dashboard__SecretKey": placeholder,
                                      "Dashboard__SessionStorage": "memory://"})
    with pytest.raises(ConfigError, match="Dashboard__SecretKey"):
        create_app({"KV_SETTINGS": settings})


def test_the_users_file_is_a_mounted_secret_key():
    deployment = _one("Deployment")
    container, pod = _container(deployment), _pod_spec(deployment)
    users_file = PurePosixPath(_env_settings(container)["Dashboard__UsersFile"])
    mounts = [m for m in container["volumeMounts"]
              if users_file.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
    relative = str(users_file.relative_to(mounts[0]["mountPath"]))
    items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
    secret = _one("Secret", volume["secret"]["secretName"])
    assert items[relative] in secret["stringData"]
    assert isinstance(json.loads(secret["stringData"][items[relative]]), list)
    # group-readable only: the pod's fsGroup must be the user's group
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


# --------------------------------------------------------------------------- the pod


def _image_uid() -> int:
    return int(re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.M).group(1))


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_pods_run_as_the_image_user_with_a_read_only_root_and_no_privileges(kind):
    workload = _one(kind)
    pod, container = _pod_spec(workload), _container(workload)
    assert _image_uid() == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_uid()
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1
    volume = next(v for v in pod["volumes"] if v["name"] == tmp[0]["name"])
    assert "emptyDir" in volume
    for kind_ in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind_])


def test_the_deployment_runs_two_replicas_probed_on_healthz_and_readyz():
    deployment = _one("Deployment")
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert "command" not in container and "args" not in container  # the image's CMD
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8080
    # a slow store makes /readyz answer 503 before the probe itself gives up
    timeout = load_settings(environ=_env_settings(container)).dashboard.store_timeout_seconds
    assert container["readinessProbe"]["timeoutSeconds"] > timeout


def test_the_service_and_ingress_reach_the_deployment_on_8080():
    deployment, service, ingress = _one("Deployment"), _one("Service"), _one("Ingress")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 8080
    container_ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
    assert container_ports[port["targetPort"]] == 8080
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["pathType"] == "Prefix"
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert path["backend"]["service"]["port"]["name"] == port["name"]


def test_the_cronjob_checks_every_index_with_the_dashboards_image_and_store_settings():
    cronjob, deployment = _one("CronJob"), _one("Deployment")
    pod, check, web = _pod_spec(cronjob), _container(cronjob), _container(deployment)
    assert pod["restartPolicy"] == "Never"
    assert [*check["command"], *check["args"]] == ["toska-kv", "check-index", "--all", "--json"]
    assert check["image"] == web["image"]
    check_env, web_env = _env_settings(check), _env_settings(web)
    store = {n for n in web_env if n.lower().startswith(("mesh__", "dashboard__services__"))}
    assert store and store <= set(check_env)
    assert {n: check_env[n] for n in store} == {n: web_env[n] for n in store}
    web_refs = {e["name"]: e.get("valueFrom") for e in web["env"]}
    for item in check.get("env", []):
        assert item.get("valueFrom") == web_refs[item["name"]]
    # the check's exit status (1 drift, 2 could not check) is the alert: never retried
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0


def test_the_cronjobs_command_runs_with_the_manifests_environment(tmp_path):
    """The CronJob's command and environment (the ConfigMap, the token from its Secret),
    the store URL pointed at a dev store: the check runs, and the token is the one sent."""
    check = _container(_one("CronJob"))
    store = start_devstore(port=0, token="cron-token")
    try:
        httpx.put(f"{store.url}/kv/profiles:alice", json={"value": "1"},
                  headers={"Authorization": "Bearer cron-token"}).raise_for_status()
        env = {name: value for name, value in _env_settings(check).items() if value is not None}
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path / "no-home"),
            "Mesh__KeyValue__ToskaStore__BaseUrl": store.url,
        })
        secret_names = [n for n, v in _env_settings(check).items() if v is None]
        assert secret_names == ["Mesh__KeyValue__ToskaStore__AuthToken"]
        command = [*check["command"], *check["args"]]
        done = subprocess.run(command, env={**env, secret_names[0]: "cron-token"},
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "services" in json.loads(done.stdout)
        refused = subprocess.run(command, env={**env, secret_names[0]: "not-the-token"},
                                 capture_output=True, text=True, check=False)
        assert refused.returncode == 2 and "401" in refused.stderr, refused.stderr
    finally:
        store.stop()
