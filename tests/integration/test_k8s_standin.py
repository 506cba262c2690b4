"""Fidelity tests of the Kubernetes API stand-in (tests/standins/k8s_api.py) through the real clients.

The stand-in is worth only as much as its agreement with what kubectl 1.32, the kubernetes python client and
kubernetes.core expect from a real API server, so every check here goes through one of them: /usr/bin/kubectl
(skipped when absent), DynamicClient, and kubernetes.core modules run by ansible-playbook. Each test works in
its own namespace of one module-wide server.
"""

import json
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # tests/ is a namespace package; the stand-ins import as tests.standins.*
    sys.path.insert(0, str(REPO))

from tests.standins import k8s_api  # noqa: E402
from tests.standins.k8s_api import StandIn  # noqa: E402

KUBECTL = shutil.which("kubectl")
TOKEN = "carbot-standin-test-token"  # a throwaway token for a loopback server, not a secret
APP = "carbot-app"

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def manifest(namespace, image, replicas=2, deadline=3, name=APP):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": image,
                                                       "ports": [{"containerPort": 8080}]}]}}},
    }


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    server = StandIn(token=TOKEN, pod_ready_seconds=0.2, work_dir=tmp_path_factory.mktemp("k8s-standin")).start()
    try:
        yield server
    finally:
        server.stop()


class Cluster:
    """One namespace of the stand-in, and a kubeconfig whose context points at it."""

    def __init__(self, standin, directory):
        self.standin = standin
        self.namespace = "t-" + uuid.uuid4().hex[:8]
        self.context = "carbot-standin"
        standin.api.ensure_namespace(self.namespace)
        self.kubeconfig = standin.write_kubeconfig(directory / "kubeconfig", context=self.context,
                                                   namespace=self.namespace)

    def kubectl(self, *args, check=True, timeout=60, kubeconfig=None):
        result = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s\n%s" % (
                " ".join(args), result.returncode, result.stdout, result.stderr))
        return result

    def kubectl_json(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, obj, directory):
        path = directory / ("manifest-%s.json" % uuid.uuid4().hex[:6])
        path.write_text(json.dumps(obj))
        return self.kubectl("apply", "-f", str(path))

    def revisions(self):
        """{replicaset image: (revision, spec.replicas)} and the Deployment's revision, read with kubectl."""
        rs_list = self.kubectl_json("get", "rs", "-l", "app=" + APP)["items"]
        deployment = self.kubectl_json("get", "deployment", APP)
        by_image = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: (
            rs["metadata"]["annotations"][k8s_api.REVISION], rs["spec"]["replicas"]) for rs in rs_list}
        return deployment["metadata"]["annotations"][k8s_api.REVISION], by_image


@pytest.fixture
def cluster(standin, tmp_path):
    return Cluster(standin, tmp_path)


def request(url, token=None, accept="application/json", cafile=None):
    """GET with urllib; returns (status, content type, parsed body)."""
    req = urllib.request.Request(url, headers={"Accept": accept})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), json.loads(exc.read())


# ------------------------------------------------------------------------------------------------ kubectl


@needs_kubectl
def test_kubectl_rollout_update_undo_and_failed_rollout(cluster, tmp_path):
    # Revision 1: a new Deployment, rolled out.
    created = cluster.apply(manifest(cluster.namespace, "carbot/app:1.0"), tmp_path)
    assert "deployment.apps/carbot-app created" in created.stdout
    status = cluster.kubectl("rollout", "status", "deployment/" + APP, "-n", cluster.namespace, "--timeout=30s")
    assert 'deployment "carbot-app" successfully rolled out' in status.stdout
    listing = cluster.kubectl_json("get", "deploy,rs")
    kinds = sorted(item["kind"] for item in listing["items"])
    assert kinds == ["Deployment", "ReplicaSet"]
    rs = next(item for item in listing["items"] if item["kind"] == "ReplicaSet")
    deployment = next(item for item in listing["items"] if item["kind"] == "Deployment")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == "%s-%s" % (APP, pod_hash)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    assert rs["metadata"]["annotations"][k8s_api.REVISION] == "1"
    assert deployment["metadata"]["annotations"][k8s_api.REVISION] == "1"
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"] == 1
    assert deployment["status"]["updatedReplicas"] == deployment["status"]["availableReplicas"] == 2
    conditions = {c["type"]: c for c in deployment["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    pods = cluster.kubectl_json("get", "pods", "-l", "pod-template-hash=" + pod_hash)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)

    # Applying the same manifest changes nothing; a new image is revision 2 and scales revision 1 down.
    again = cluster.apply(manifest(cluster.namespace, "carbot/app:1.0"), tmp_path)
    assert "unchanged" in again.stdout
    configured = cluster.apply(manifest(cluster.namespace, "carbot/app:1.1"), tmp_path)
    assert "configured" in configured.stdout
    cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
    assert cluster.revisions() == ("2", {"carbot/app:1.0": ("1", 0), "carbot/app:1.1": ("2", 2)})
    assert cluster.kubectl_json("get", "deployment", APP)["metadata"]["generation"] == 2

    # kubectl rollout undo goes back to revision 1's ReplicaSet, which becomes revision 3 (as in Kubernetes).
    undo = cluster.kubectl("rollout", "undo", "deployment/" + APP)
    assert "rolled back" in undo.stdout
    cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
    assert cluster.revisions() == ("3", {"carbot/app:1.0": ("3", 2), "carbot/app:1.1": ("2", 0)})
    reused = next(rs for rs in cluster.kubectl_json("get", "rs")["items"]
                  if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "carbot/app:1.0")
    assert reused["metadata"]["annotations"][k8s_api.REVISION_HISTORY] == "1"
    history = cluster.kubectl("rollout", "history", "deployment/" + APP).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]

    # An image marked to fail never becomes ready: rollout status fails once the progress deadline passes,
    # and the old pods keep serving.
    cluster.kubectl("set", "image", "deployment/" + APP, "app=carbot/app:2.0-fail")
    started = time.monotonic()
    failed = cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s", check=False)
    assert failed.returncode != 0
    assert 'deployment "carbot-app" exceeded its progress deadline' in failed.stderr
    assert time.monotonic() - started < 20
    deployment = cluster.kubectl_json("get", "deployment", APP)
    progressing = next(c for c in deployment["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert deployment["status"]["availableReplicas"] == 2 and deployment["status"]["updatedReplicas"] == 1
    bad_pod = next(p for p in cluster.kubectl_json("get", "pods")["items"]
                   if p["spec"]["containers"][0]["image"] == "carbot/app:2.0-fail")
    assert bad_pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"

    # Undo the failed rollout: back to 1.0 as revision 5, the failed ReplicaSet scaled to zero.
    cluster.kubectl("rollout", "undo", "deployment/" + APP)
    cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
    assert cluster.revisions() == ("5", {"carbot/app:1.0": ("5", 2), "carbot/app:1.1": ("2", 0),
                                         "carbot/app:2.0-fail": ("4", 0)})

    # kubectl rollout undo --to-revision picks a revision by number.
    cluster.kubectl("rollout", "undo", "deployment/" + APP, "--to-revision=2")
    cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
    assert cluster.revisions()[0] == "6"
    assert cluster.kubectl_json("get", "deployment", APP)["spec"]["template"]["spec"]["containers"][0]["image"] \
        == "carbot/app:1.1"


@needs_kubectl
def test_kubectl_scale_get_and_delete(cluster, tmp_path):
    cluster.apply(manifest(cluster.namespace, "carbot/app:1.0", replicas=1), tmp_path)
    cluster.kubectl("scale", "deployment/" + APP, "--replicas=3")
    cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
    deployment = cluster.kubectl_json("get", "deployment", APP)
    assert deployment["status"]["availableReplicas"] == 3
    assert cluster.kubectl_json("get", "deployment", APP)["metadata"]["annotations"][k8s_api.REVISION] == "1"
    table = cluster.kubectl("get", "deployments,replicasets,pods").stdout  # server-side Table columns
    assert "READY   UP-TO-DATE   AVAILABLE" in table and "DESIRED   CURRENT   READY" in table
    assert "deployment.apps/carbot-app   3/3" in table and table.count("pod/carbot-app-") == 3
    missing = cluster.kubectl("get", "deployment", "nope", check=False)
    assert missing.returncode != 0 and 'deployments.apps "nope" not found' in missing.stderr
    cluster.kubectl("delete", "deployment", APP)
    assert cluster.kubectl_json("get", "rs,pods")["items"] == []  # owned objects are garbage-collected


@needs_kubectl
def test_kubectl_with_legacy_discovery_over_plain_http(tmp_path):
    """The fallback path: no aggregated discovery, plain HTTP, no token (kubectl sends none over HTTP)."""
    with StandIn(tls=False, aggregated_discovery=False, pod_ready_seconds=0.1, work_dir=tmp_path) as server:
        server.api.ensure_namespace("carbot")
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace="carbot")
        path = tmp_path / "deploy.json"
        path.write_text(json.dumps(manifest("carbot", "carbot/app:1.0")))
        run = [KUBECTL, "--kubeconfig", str(kubeconfig)]
        subprocess.run(run + ["apply", "-f", str(path)], check=True, capture_output=True, timeout=60)
        status = subprocess.run(run + ["rollout", "status", "deployment/" + APP, "--timeout=30s"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        resources = subprocess.run(run + ["api-resources"], capture_output=True, text=True, check=True).stdout
        assert "deployments" in resources and "replicasets" in resources


# --------------------------------------------------------------------------------------------------- auth


def test_requests_without_the_token_are_unauthorized(standin):
    ca = standin.ca_file
    code, _, body = request(standin.url + "/apis/apps/v1/deployments", cafile=ca)
    assert code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    code, _, body = request(standin.url + "/version", token="wrong", cafile=ca)
    assert code == 401 and body["code"] == 401
    code, _, body = request(standin.url + "/version", token=TOKEN, cafile=ca)
    assert code == 200 and body["minor"] == "32"


@needs_kubectl
def test_kubectl_with_a_wrong_token_is_refused(cluster, standin, tmp_path):
    wrong = standin.write_kubeconfig(tmp_path / "wrong", namespace=cluster.namespace, token="not-the-token")
    denied = cluster.kubectl("get", "deployments", kubeconfig=wrong, check=False)
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr or "must be logged in" in denied.stderr
    assert cluster.kubectl("get", "deployments").returncode == 0


def test_discovery_answers_aggregated_and_legacy(standin):
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, ctype, body = request(standin.url + "/apis", TOKEN, accept=aggregated, cafile=standin.ca_file)
    assert code == 200 and "as=APIGroupDiscoveryList" in ctype and body["kind"] == "APIGroupDiscoveryList"
    deployments = body["items"][0]["versions"][0]["resources"][0]
    assert deployments["resource"] == "deployments"
    assert {s["subresource"] for s in deployments["subresources"]} == {"scale", "status"}
    code, ctype, body = request(standin.url + "/api", TOKEN, cafile=standin.ca_file)
    assert body["kind"] == "APIVersions" and body["versions"] == ["v1"]
    code, _, body = request(standin.url + "/apis/apps/v1", TOKEN, cafile=standin.ca_file)
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= {
        r["name"] for r in body["resources"]}


# ------------------------------------------------------------------------------- kubernetes python client


def test_dynamic_client_discovers_creates_patches_and_watches(cluster, tmp_path):
    from kubernetes import config, dynamic, watch  # noqa: F401 - watch is used through dyn.watch
    from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, UnprocessibleEntityError

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    dyn = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery-cache.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    replicasets = dyn.resources.get(api_version="apps/v1", kind="ReplicaSet")
    ns = cluster.namespace

    created = deployments.create(body=manifest(ns, "carbot/app:1.0", replicas=1), namespace=ns)
    assert created.metadata.generation == 1 and created.metadata.uid
    with pytest.raises(ConflictError) as exists:
        deployments.create(body=manifest(ns, "carbot/app:1.0"), namespace=ns)
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(NotFoundError) as missing:
        deployments.get(name="nope", namespace=ns)
    assert json.loads(missing.value.body)["reason"] == "NotFound"

    # Strategic merge patch (the DynamicClient default): replicas, and a container merged by name.
    patched = deployments.patch(name=APP, namespace=ns, body={"spec": {"replicas": 2, "template": {"spec": {
        "containers": [{"name": "app", "image": "carbot/app:1.1"}]}}}})
    assert patched.metadata.generation == 2
    container = patched.spec.template.spec.containers[0]
    assert (container.image, container.ports[0].containerPort) == ("carbot/app:1.1", 8080)
    # JSON merge patch and JSON patch.
    deployments.patch(name=APP, namespace=ns, body={"metadata": {"annotations": {"team": "carbot"}}},
                      content_type="application/merge-patch+json")
    patched = deployments.patch(name=APP, namespace=ns, content_type="application/json-patch+json",
                                body=[{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert patched.spec.replicas == 3 and patched.metadata.annotations["team"] == "carbot"

    # A replace with a stale resourceVersion conflicts; an invalid selector is refused.
    stale = created.to_dict()
    with pytest.raises(ConflictError):
        deployments.replace(body=stale, namespace=ns)
    bad = manifest(ns, "carbot/app:1.0", name="bad")
    bad["spec"]["selector"]["matchLabels"] = {"app": "other"}
    with pytest.raises(UnprocessibleEntityError):
        deployments.create(body=bad, namespace=ns)

    # A watch with a field selector sees the controller finish the rollout.
    finished = None
    for event in dyn.watch(deployments, namespace=ns, field_selector="metadata.name=" + APP, timeout=15):
        status = event["object"].status
        if event["type"] == "MODIFIED" and status.updatedReplicas == 3 and status.availableReplicas == 3:
            finished = event["object"]
            break
    assert finished is not None
    assert finished.metadata.annotations[k8s_api.REVISION] == "2"
    owned = replicasets.get(namespace=ns, label_selector="app=" + APP).items
    assert sorted(rs.metadata.annotations[k8s_api.REVISION] for rs in owned) == ["1", "2"]

    scale = dyn.resources.get(api_version="apps/v1", kind="Deployment").subresources["scale"]
    assert scale.get(name=APP, namespace=ns).spec.replicas == 3


# -------------------------------------------------------------------------------------------- kubernetes.core


@pytest.mark.slow
def test_kubernetes_core_modules_roll_out_fail_and_roll_back(cluster, tmp_path):
    # TMPDIR: kubernetes.core caches discovery in the temp dir, one file per server address; keep it in tmp_path.
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               TMPDIR=str(tmp_path))
    namespace = "play-" + uuid.uuid4().hex[:8]  # the playbook creates it with kubernetes.core.k8s
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
         str(REPO / "tests/integration/playbooks/k8s_standin.yml"),
         "-e", "k8s_standin_kubeconfig=%s" % cluster.kubeconfig, "-e", "k8s_standin_context=%s" % cluster.context,
         "-e", "k8s_standin_namespace=%s" % namespace, "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    deployment = cluster.standin.api.store.get(k8s_api.DEPLOYMENTS, namespace, APP)
    assert deployment["metadata"]["annotations"][k8s_api.REVISION] == "4"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "carbot/app:1.1"


def test_deployment_rollout_applies_watches_fails_fast_and_times_out(cluster, tmp_path):
    """carbot.migration.deployment_rollout over the stand-in's real socket (tests/integration/playbooks/
    deployment_rollout.yml asserts each case); here: the revisions it left, as the API server keeps them."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               TMPDIR=str(tmp_path))
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
         str(REPO / "tests/integration/playbooks/deployment_rollout.yml"),
         "-e", "k8s_standin_kubeconfig=%s" % cluster.kubeconfig, "-e", "k8s_standin_context=%s" % cluster.context,
         "-e", "k8s_standin_namespace=%s" % cluster.namespace, "-e", "ansible_python_interpreter=%s" % sys.executable],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    deployment = cluster.standin.api.store.get(k8s_api.DEPLOYMENTS, cluster.namespace, APP)
    assert deployment["metadata"]["annotations"][k8s_api.REVISION] == "7"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "carbot/app:2.1-fail"
    # the check-mode apply and undo wrote nothing: revisions 1 (1.0), 2 (1.1), 3 (1.0, undo), 4 (1.1, undo),
    # 5 (2.0-fail), 6 (1.1, k8s_rollback), 7 (2.1-fail); one ReplicaSet per template
    images = sorted(rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    for rs in cluster.standin.api.store.list(k8s_api.REPLICASETS, cluster.namespace))
    assert images == ["carbot/app:1.0", "carbot/app:1.1", "carbot/app:2.0-fail", "carbot/app:2.1-fail"]


# ------------------------------------------------------------------------------ seeding, persistence, CLI


@needs_kubectl
def test_seeded_state_survives_a_restart(tmp_path):
    state = tmp_path / "k8s-state.json"
    with StandIn(token=TOKEN, state_file=state, work_dir=tmp_path) as first:
        seeded = first.api.seed_deployment(APP, "carbot", "carbot/app:1.0", replicas=2)
        assert seeded["metadata"]["annotations"][k8s_api.REVISION] == "1"
        assert seeded["status"]["availableReplicas"] == 2
        uid = seeded["metadata"]["uid"]
    with StandIn(token=TOKEN, state_file=state, pod_ready_seconds=0.1, work_dir=tmp_path) as second:
        cluster = Cluster.__new__(Cluster)
        cluster.namespace, cluster.context = "carbot", "carbot-standin"
        cluster.kubeconfig = second.write_kubeconfig(tmp_path / "kubeconfig", namespace="carbot")
        status = cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=10s")
        assert "successfully rolled out" in status.stdout
        deployment = cluster.kubectl_json("get", "deployment", APP)
        assert deployment["metadata"]["uid"] == uid
        cluster.kubectl("set", "image", "deployment/" + APP, "app=carbot/app:1.1")
        cluster.kubectl("rollout", "status", "deployment/" + APP, "--timeout=30s")
        assert cluster.revisions()[0] == "2"
        assert int(deployment["metadata"]["resourceVersion"]) < int(
            cluster.kubectl_json("get", "deployment", APP)["metadata"]["resourceVersion"])


def test_cli_serves_seeds_and_stops_on_sigterm(tmp_path):
    ready, kubeconfig, state = tmp_path / "ready.json", tmp_path / "kubeconfig", tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.k8s_api", "--port", "0", "--token", TOKEN, "--state-file", str(state),
         "--kubeconfig-out", str(kubeconfig), "--ready-file", str(ready), "--namespace", "carbot",
         "--seed-deployment", "carbot/%s=carbot/app:1.0" % APP],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "no ready file"
        info = json.loads(ready.read_text())
        config = json.loads(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == info["url"]
        assert config["contexts"][0]["context"]["namespace"] == "carbot"
        cafile = tmp_path / "standin-ca.crt"
        code, _, body = request(info["url"] + "/apis/apps/v1/namespaces/carbot/deployments/" + APP, TOKEN,
                                cafile=cafile)
        assert code == 200 and body["metadata"]["annotations"][k8s_api.REVISION] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert json.loads(state.read_text())["objects"]


# ------------------------------------------------------------------------------------------ pure functions


def test_strategic_merge_patch_directives():
    live = {"spec": {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                    {"name": "side", "image": "s:1"}],
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
            "metadata": {"finalizers": ["a"]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                      "containers": [{"name": "app", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                                     {"name": "gone", "$patch": "delete"}],
                      "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}},
             "metadata": {"finalizers": ["b"]}}
    merged = k8s_api.strategic_merge_patch(live, patch)
    assert [c["name"] for c in merged["spec"]["containers"]] == ["side", "app"]
    assert merged["spec"]["containers"][1]["image"] == "a:2"
    assert [e["name"] for e in merged["spec"]["containers"][1]["env"]] == ["X", "Y"]
    assert merged["spec"]["strategy"] == {"type": "Recreate"}
    assert merged["metadata"]["finalizers"] == ["a", "b"]
    deleted = k8s_api.strategic_merge_patch(live, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["app"]


def test_json_patch_and_selectors():
    doc = {"metadata": {"annotations": {"a": "1"}}, "spec": {"list": [1, 2]}}
    result = k8s_api.json_patch(doc, [{"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}},
                                      {"op": "add", "path": "/spec/list/-", "value": 3},
                                      {"op": "remove", "path": "/spec/list/0"},
                                      {"op": "test", "path": "/spec/list", "value": [2, 3]}])
    assert result == {"metadata": {"annotations": {"b": "2"}}, "spec": {"list": [2, 3]}}
    with pytest.raises(k8s_api.ApiError) as missing:
        k8s_api.json_patch(doc, [{"op": "replace", "path": "/nope/x", "value": 1}])
    assert missing.value.code == 422
    labels = {"app": "carbot-app", "tier": "web"}
    for selector, expected in [("app=carbot-app", True), ("app==carbot-app,tier!=db", True), ("app", True),
                               ("!app", False), ("tier in (web, api)", True), ("tier notin (web)", False),
                               ("app=other", False), ("", True)]:
        assert k8s_api.labels_match(k8s_api.parse_label_selector(selector), labels) is expected, selector
