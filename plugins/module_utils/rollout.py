# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a Deployment's rollout with a Kubernetes WATCH, as ``kubectl rollout status`` does (issue 14).

kubernetes.core's waiter (``wait: true`` of k8s and k8s_info) looks once, then sleeps ``wait_sleep`` (an integer,
at least 1 s) between looks: a rollout that completes 0.3 s after the apply costs a full second of write freeze.
A watch is told of every change of the Deployment as the API server stores it, so the wait ends with the change
that completes the rollout. :func:`rollout_state` is kubectl's rule (``DeploymentStatusViewer.Status`` in
kubectl/pkg/polymorphichelpers/rollout_status.go), a pure function over the Deployment as the API returns it;
:func:`wait_for_rollout` reads the Deployment once, then watches it from that read's resourceVersion until the
rule says complete, the Progressing condition says ProgressDeadlineExceeded (fails at once, as kubectl does), the
Deployment is deleted, or the timeout passes. A watch the server ends (its timeoutSeconds, a restart, 410 Gone
when the resourceVersion is too old) is followed by a fresh read and a new watch, until the timeout.

The client calls go through kubernetes' generated AppsV1Api with ``_preload_content=False``: the objects stay the
API's JSON (camelCase dicts, as ``kubectl get -o json`` shows them), nothing is deserialised into models.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import time
import traceback

from ansible_collections.carbot.migration.plugins.module_utils.errors import CarbotError

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    import kubernetes
    from kubernetes.client.rest import ApiException
    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()

# The kubernetes.core authentication options deployment_rollout takes (doc fragment carbot.migration.k8s_auth), with
# kubernetes.core's types and aliases; kubernetes.core's client reads every option not given, and the others
# (username, password, proxy, impersonation, ...), from its K8S_AUTH_* environment variables, as in its own modules.
# Declared here, not imported, so that the documentation and the argument spec do not need kubernetes.core installed
# (ansible-doc, ansible-test sanity).
K8S_AUTH_SPEC = dict(
    kubeconfig=dict(type="raw", no_log=True),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"]),
)

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
# The annotations kubectl rollout undo keeps from the Deployment instead of copying them from the ReplicaSet
# (annotationsToSkip in kubectl/pkg/polymorphichelpers/rollback.go).
UNDO_KEEPS = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
              "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
              "deprecated.deployment.rollback.to")


class RolloutError(CarbotError):
    """The rollout did not complete: its progress deadline passed, the wait timed out, the Deployment is gone
    or the API refused the read or the watch. ``extra`` carries the Deployment as last seen (``result``)."""


def rollout_state(deployment):
    """``(done, failed, message)`` of one Deployment (a dict as the API returns it), by kubectl's rule.

    Complete once the controller has observed the latest spec (observedGeneration >= generation), every
    replica runs the new template (updatedReplicas >= spec.replicas), no old replica is left (status.replicas
    <= updatedReplicas) and every updated replica is available. ``failed``: the Progressing condition says
    ProgressDeadlineExceeded (the controller gave up). ``message`` is kubectl's line for the state.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "?")
    if (meta.get("generation") or 0) > (status.get("observedGeneration") or 0):
        return False, False, "Waiting for deployment spec update to be observed..."
    progressing = condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return False, True, 'deployment "%s" exceeded its progress deadline' % name
    replicas = spec.get("replicas", 1)  # the API defaults spec.replicas to 1
    updated = status.get("updatedReplicas") or 0
    current = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    waiting = 'Waiting for deployment "%s" rollout to finish: ' % name
    if replicas is not None and updated < replicas:
        return False, False, waiting + "%d out of %d new replicas have been updated..." % (updated, replicas)
    if current > updated:
        return False, False, waiting + "%d old replicas are pending termination..." % (current - updated)
    if available < updated:
        return False, False, waiting + "%d of %d updated replicas are available..." % (available, updated)
    return True, False, 'deployment "%s" successfully rolled out' % name


def condition(deployment, kind):
    """The status condition of type ``kind`` (a dict), or None."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def summary(deployment):
    """What the cutover remembers of the Deployment it ended with: revision and image of the first container."""
    meta = deployment.get("metadata") or {}
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return {"revision": (meta.get("annotations") or {}).get(REVISION, "none"),
            "image": containers[0].get("image", "none")}


def selector_string(deployment):
    """The Deployment's matchLabels as a label selector (the cutover's Deployments select by labels only)."""
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join("%s=%s" % item for item in sorted(labels.items()))


def previous_replicaset(deployment, replicasets):
    """The ReplicaSet of the revision before the newest one among the Deployment's own ReplicaSets (controller owner
    reference = its uid), as ``kubectl rollout undo`` picks it; None without one."""
    uid = (deployment.get("metadata") or {}).get("uid")
    ranked = []
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller") and o.get("uid") == uid]
        try:
            revision = int((meta.get("annotations") or {}).get(REVISION))
        except (TypeError, ValueError):
            continue
        if owners:
            ranked.append((revision, rs))
    ranked.sort(key=lambda item: item[0])
    return ranked[-2][1] if len(ranked) >= 2 else None


def template_without_hash(template):
    """A pod template without the pod-template-hash label (kubectl's equalIgnoreHash and the undo's patch)."""
    template = json.loads(json.dumps(template or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
    return template


def undo_patch(deployment, replicaset):
    """kubectl rollout undo's JSON patch: the ReplicaSet's pod template (without its hash label) and its
    annotations, keeping the Deployment's own UNDO_KEEPS annotations."""
    annotations = {k: v for k, v in ((deployment.get("metadata") or {}).get("annotations") or {}).items()
                   if k in UNDO_KEEPS}
    annotations.update({k: v for k, v in ((replicaset.get("metadata") or {}).get("annotations") or {}).items()
                        if k not in UNDO_KEEPS})
    return [{"op": "replace", "path": "/spec/template", "value": template_without_hash(replicaset["spec"]["template"])},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations}]


def desired(deployment):
    """What a write changes of a Deployment: its spec, labels and annotations (not its status, the
    resourceVersion, managedFields or the revision annotation the controller keeps)."""
    meta = deployment.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(REVISION, None)
    return {"spec": deployment.get("spec"), "labels": meta.get("labels") or {}, "annotations": annotations}


def watch_lines(response):
    """The lines of a chunked watch response, as they arrive (bytes, without the newline)."""
    buffered = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            if line.strip():
                yield line
    if buffered.strip():
        yield buffered


class DeploymentWatch:
    """Read and watch one Deployment through ``apps`` (a ``kubernetes.client.AppsV1Api``), as plain dicts."""

    def __init__(self, apps, namespace, name, api_exception):
        self.apps, self.namespace, self.name = apps, namespace, name
        self.api_exception = api_exception  # kubernetes.client.rest.ApiException (the module imports kubernetes)
        self.events = 0
        self.missing = False  # the last read found no Deployment
        self.rolled_back_to = None  # the revision an undo rolled back to

    def read(self, timeout):
        self.missing = False
        try:
            response = self.apps.read_namespaced_deployment(self.name, self.namespace, _preload_content=False,
                                                            _request_timeout=timeout)
        except self.api_exception as exc:
            if exc.status == 404:
                self.missing = True
                raise RolloutError("Deployment %s/%s not found" % (self.namespace, self.name))
            raise RolloutError("Could not read Deployment %s/%s: %s" % (self.namespace, self.name, api_reason(exc)))
        return json.loads(response.data)

    def apply(self, definition, dry_run=False, timeout=30):
        """Create the Deployment from ``definition``, or strategic-merge-patch the live one with it (what
        ``kubernetes.core.k8s`` with ``state: present`` does to an existing Deployment; the API merges
        containers and env entries by name). Returns ``(before, after, operation)``: the live object before
        (None when absent), the object the API returned (its generation and resourceVersion are where the wait
        starts), and V(created), V(patched) or V(unchanged). ``dry_run``: the API server's dry run (check mode).
        """
        definition = dict(definition, apiVersion="apps/v1", kind="Deployment")
        definition["metadata"] = dict(definition.get("metadata") or {}, name=self.name, namespace=self.namespace)
        kwargs = dict(_preload_content=False, _request_timeout=timeout)
        if dry_run:
            kwargs["dry_run"] = "All"
        try:
            before = self.read(timeout)
        except RolloutError:
            before = None
            if not self.missing:
                raise
        try:
            if before is None:
                response = self.apps.create_namespaced_deployment(self.namespace, definition, **kwargs)
            else:
                response = self.apps.patch_namespaced_deployment(
                    self.name, self.namespace, definition, _content_type="application/strategic-merge-patch+json",
                    **kwargs)
        except self.api_exception as exc:
            raise RolloutError("Could not %s Deployment %s/%s: %s" % (
                "create" if before is None else "patch", self.namespace, self.name, api_reason(exc)), before=before)
        after = json.loads(response.data)
        if before is None:
            return before, after, "created"
        return before, after, "unchanged" if desired(before) == desired(after) else "patched"

    def undo(self, dry_run=False, timeout=30):
        """Roll the Deployment back to its previous revision as ``kubectl rollout undo`` does: the ReplicaSet of the
        revision before the newest, its pod template and annotations patched back in (JSON patch). Returns
        ``(before, after, operation)``: V(rolled back), or V(unchanged) when the live template already is that
        revision's (kubectl: "skipped rollback")."""
        before = self.read(timeout)
        name = "%s/%s" % (self.namespace, self.name)
        if (before.get("spec") or {}).get("paused"):
            raise RolloutError("Deployment %s is paused; resume it before rolling it back" % name)
        kwargs = dict(_preload_content=False, _request_timeout=timeout)
        try:
            listed = self.apps.list_namespaced_replica_set(self.namespace, label_selector=selector_string(before),
                                                           **kwargs)
        except self.api_exception as exc:
            raise RolloutError("Could not list the ReplicaSets of Deployment %s: %s" % (name, api_reason(exc)))
        previous = previous_replicaset(before, json.loads(listed.data).get("items") or [])
        if previous is None:
            raise RolloutError("no rollout history found for deployment %s: nothing to roll back to" % name)
        if template_without_hash(before["spec"]["template"]) == template_without_hash(previous["spec"]["template"]):
            return before, before, "unchanged"
        if dry_run:
            kwargs["dry_run"] = "All"
        try:
            response = self.apps.patch_namespaced_deployment(self.name, self.namespace, undo_patch(before, previous),
                                                             _content_type="application/json-patch+json", **kwargs)
        except self.api_exception as exc:
            raise RolloutError("Could not roll Deployment %s back: %s" % (name, api_reason(exc)))
        self.rolled_back_to = (previous["metadata"].get("annotations") or {}).get(REVISION)
        return before, json.loads(response.data), "rolled back"

    def changes(self, resource_version, seconds):
        """The Deployment as each watch event after ``resource_version`` shows it, for at most ``seconds``.

        Ends when the server ends the watch; yields None when the resourceVersion is too old (410 Gone: read
        again). Raises RolloutError when the Deployment is deleted or the watch is refused.
        """
        try:
            response = self.apps.list_namespaced_deployment(
                self.namespace, field_selector="metadata.name=%s" % self.name, resource_version=resource_version,
                watch=True, timeout_seconds=max(1, int(math.ceil(seconds))), _preload_content=False,
                _request_timeout=seconds + 10)
        except self.api_exception as exc:
            if exc.status == 410:
                yield None
                return
            raise RolloutError("Could not watch Deployment %s/%s: %s" % (self.namespace, self.name, api_reason(exc)))
        try:
            for line in watch_lines(response):
                event = json.loads(line)
                self.events += 1
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        yield None
                        return
                    raise RolloutError("The watch of Deployment %s/%s failed: %s" % (
                        self.namespace, self.name, obj.get("message", obj)))
                if kind == "DELETED":
                    raise RolloutError("Deployment %s/%s was deleted during the rollout" % (self.namespace, self.name))
                if kind in ("ADDED", "MODIFIED"):
                    yield obj
        finally:
            response.close()
            response.release_conn()


def api_reason(exc):
    """The API's message of an ApiException (its Status body), else its reason."""
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return "%s %s" % (exc.status, exc.reason)


def wait_for_rollout(watch, timeout, clock=time.monotonic, start=None):
    """Wait until the Deployment of ``watch`` (a :class:`DeploymentWatch`) has rolled out, by kubectl's rule.

    ``start``: the Deployment as a write just returned it (the wait starts from its resourceVersion, no read).
    Returns ``(deployment, messages)``: the Deployment as last seen, and each distinct status line in the order
    seen (what ``kubectl rollout status`` prints). Raises RolloutError (with ``result`` and ``messages``) when the
    progress deadline is exceeded or ``timeout`` seconds pass first.
    """
    deadline = clock() + timeout
    messages = []

    def look(obj):
        done, failed, message = rollout_state(obj)
        if not messages or messages[-1] != message:
            messages.append(message)
        if failed:
            progressing = condition(obj, "Progressing") or {}
            raise RolloutError("%s: %s" % (message, progressing.get("message", "no progress")),
                               result=obj, messages=messages)
        return done

    deployment = start if start is not None else watch.read(max(1.0, deadline - clock()))
    while not look(deployment):
        remaining = deadline - clock()
        if remaining <= 0:
            raise RolloutError('timed out after %s s waiting for deployment "%s" to roll out; last status: %s' % (
                timeout, watch.name, messages[-1]), result=deployment, messages=messages)
        resource_version = (deployment.get("metadata") or {}).get("resourceVersion")
        done = False
        for obj in watch.changes(resource_version, remaining):
            if obj is None:  # too old: read again and watch from there
                break
            deployment = obj
            if look(deployment):
                done = True
                break
            if clock() >= deadline:
                break
        if done:
            break
        if clock() < deadline:  # the server ended the watch early (or 410): read again, watch again
            deployment = watch.read(max(1.0, deadline - clock()))
    return deployment, messages


# carbot.migration.deployment_rollout: its options (with kubernetes.core's authentication options) and its run, shared
# by the module and its action plugin (which runs it in the controller's process on a local connection).
def argument_spec():
    spec = dict(K8S_AUTH_SPEC)
    spec.update(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        definition=dict(type="dict"),
        undo=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
    )
    return spec


MUTUALLY_EXCLUSIVE = [("definition", "undo")]

# The operations that change the Deployment.
CHANGES = ("created", "patched", "rolled back")


def _rollout(params, check_mode, watch):
    """Apply or undo (when asked) and wait (when asked): the result fields."""
    operation, start = "none", None
    timeout = min(30, params["wait_timeout"])
    if params["definition"] is not None:
        _before, start, operation = watch.apply(params["definition"], dry_run=check_mode, timeout=timeout)
    elif params["undo"]:
        _before, start, operation = watch.undo(dry_run=check_mode, timeout=timeout)
    watch.operation = operation
    if params["wait"] and not check_mode:
        deployment, messages = wait_for_rollout(watch, params["wait_timeout"], start=start)
        done = True
    else:
        deployment = start if start is not None else watch.read(timeout)
        done, _failed, message = rollout_state(deployment)
        messages = [message]
    out = summary(deployment)
    out.update(changed=operation in CHANGES, operation=operation, result=deployment, rolled_out=done,
               message=messages[-1], messages=messages, rolled_back_to=watch.rolled_back_to)
    return out


def run(params, check_mode):
    """The module's result, or RolloutError whose fields are the module's failed result (the one place an error
    becomes the failure, with the documented fields that are known)."""
    started = time.monotonic()
    if IMPORT_ERROR:
        raise RolloutError("Failed to import the required Python library (kubernetes) on the host that runs "
                           "carbot.migration.deployment_rollout", exception=IMPORT_ERROR)
    watch = None
    try:
        # kubernetes.core's client (its auth options, kubeconfig, context, K8S_AUTH_* variables); the generated
        # AppsV1Api on its ApiClient needs no discovery for a Deployment.
        api_client = get_api_client(**{k: v for k, v in params.items() if k in K8S_AUTH_SPEC}).client.client
        watch = DeploymentWatch(kubernetes.client.AppsV1Api(api_client), params["namespace"], params["name"],
                                ApiException)
        out = _rollout(params, check_mode, watch)
    except Exception as exc:  # noqa: BLE001 - any error (kubeconfig, connection) is reported to the operator
        operation = getattr(watch, "operation", "none")
        fields = dict(changed=operation in CHANGES and not check_mode, operation=operation, rolled_out=False,
                      rolled_back_to=watch.rolled_back_to if watch else None,
                      elapsed=round(time.monotonic() - started, 3), events=watch.events if watch else 0)
        if isinstance(exc, RolloutError):
            fields.update(exc.extra, msg=exc.msg)
            fields.pop("before", None)
            msg = exc.msg
        else:
            msg = "Could not roll out Deployment %s/%s: %s: %s" % (
                params["namespace"], params["name"], type(exc).__name__, exc)
            fields["exception"] = traceback.format_exc()
        fields.setdefault("messages", [msg])
        if fields.get("result"):
            fields.update(summary(fields["result"]))
        fields["message"] = fields["messages"][-1]
        fields.pop("msg", None)
        raise RolloutError(msg, **fields)
    out.update(elapsed=round(time.monotonic() - started, 3), events=watch.events)
    return out
