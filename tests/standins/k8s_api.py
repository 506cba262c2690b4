"""A local stand-in for the Kubernetes API: the parts that the cutover's clients use.

Why not kmock (PyPI, 0.8, checked before writing this)
------------------------------------------------------
kmock is an aiohttp mock server built for testing Kopf operators from inside pytest. Its stateful
``KubernetesEmulator`` merges dicts naively, always reports ``resourceVersion: '...'`` and sets no uid,
generation or creationTimestamp. It has no label or field selectors, no strategic-merge or JSON patch,
no deployment controller (no ReplicaSets, no revisions, no rollout status), no authentication and no
HTTPS, and its CLI only fetches resource lists: it cannot be run as a server beside a rehearsal. It
would also pull aiohttp, attrs, yarl and jsonpatch into the project. Real ``kubectl rollout status``,
``kubectl rollout undo`` and ``kubernetes.core.k8s_rollback`` rely on exactly the parts it lacks, so
this module is written from scratch with only the standard library (plus ``cryptography``, already
an ansible-core dependency, for the self-signed certificate).

What it serves
--------------
* Discovery: ``/version`` (v1.32, so gcloud's kubectl dispatcher picks kubectl 1.32), ``/api``,
  ``/apis`` and the resource lists. It also answers the aggregated discovery that kubectl 1.32 asks for
  first (``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``). With
  ``aggregated_discovery=False`` it answers in the legacy format, which kubectl falls back to. The
  kubernetes python client (DynamicClient, kubernetes.core) only asks for the legacy format.
* ``/openapi/v3`` with one document for ``apps/v1`` that says PATCH accepts ``fieldValidation``. Without
  it, ``kubectl apply`` (``--validate=strict`` by default) fails with "failed to download openapi".
  The document has no schemas and no request body on purpose: kubectl then builds the strategic
  merge patch from the types compiled into it, as it does for any server without OpenAPI schemas.
* Core v1 namespaces, pods, events, services, configmaps, secrets; apps/v1 deployments (with ``/status``
  and ``/scale``) and replicasets (same). GET, LIST (labelSelector, fieldSelector ``metadata.name`` /
  ``metadata.namespace``, ``limit`` ignored), WATCH (``watch=true``: chunked JSON lines, from a given
  ``resourceVersion``, ``timeoutSeconds``), POST, PUT (optimistic concurrency on resourceVersion), PATCH
  (strategic merge, JSON merge, JSON patch, server-side apply treated as a strategic merge), DELETE
  (with owner-reference garbage collection unless ``propagationPolicy=Orphan``), ``dryRun=All``, and the
  ``meta.k8s.io`` Table that ``kubectl get`` asks for (the columns of a real cluster for deployments,
  replicasets, pods and namespaces).
* Errors are ``Status`` objects as the API server writes them: 404 NotFound, 409 AlreadyExists and
  Conflict, 422 Invalid (immutable selector, selector not matching the template labels), 401 Unauthorized.
* Bearer-token auth when a token is configured. kubectl never sends a bearer token over plain HTTP, so
  the server speaks HTTPS with a self-signed certificate by default; its CA goes into the kubeconfig.
* A deployment controller modelled on kube-controller-manager's: one ReplicaSet per pod template,
  named ``<deployment>-<hash>`` with the ``pod-template-hash`` label and a controller owner reference,
  revision annotations on the ReplicaSet and the Deployment (a ReplicaSet that is re-used by a rollback
  gets the next revision number and a ``revision-history`` annotation), rolling updates that honour
  maxSurge/maxUnavailable (and Recreate), pods that become ready ``pod_ready_seconds`` after they are
  created, the Deployment status fields and the Available/Progressing conditions with the real reasons
  (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
  ProgressDeadlineExceeded), ``revisionHistoryLimit`` clean-up and ``paused``. A rolling update keeps old and
  new pods side by side for about replicas x ``pod_ready_seconds`` (maxSurge 1, maxUnavailable 0), and
  ``GET /_standin/rollout-timeline`` (not a Kubernetes API) lists, change by change, how many pods of each
  revision exist and are ready: the online cutover's rollout timeline. Pods of an image whose
  tag contains the fail marker (``fail`` by default) never become ready (ImagePullBackOff), so the
  rollout stalls and turns ProgressDeadlineExceeded after ``progressDeadlineSeconds``.
* Optional persistence to a JSON state file, so a restarted server keeps its objects.

Known gaps (on purpose, none of the clients above needs them): no protobuf, no HTTP/2, no managedFields
(server-side apply does not track field ownership, so it never removes fields), no field validation
(``fieldValidation`` is accepted and ignored), no BOOKMARK events, no ``continue`` paging, no admission, no RBAC
(one token, full access), no real pods (pod objects exist, with simulated status), no events are recorded.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hmac
import http.server
import ipaddress
import json
import os
import pathlib
import random
import re
import signal
import socketserver
import ssl
import string
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import deque

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10e2c12d",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HASH_LABEL = "pod-template-hash"
# The stand-in's record of which revision's pods were ready when (GET, same auth; ``?since=<epoch>``).
TIMELINE_PATH = "/_standin/rollout-timeline"
# Deployment annotations the controller never copies to its ReplicaSets (deployment/util annotationsToSkip).
ANNOTATIONS_TO_SKIP = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                       "deprecated.deployment.rollback.to"}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]


class ResourceType:
    """One served resource: what discovery says about it and how the store keys it."""

    def __init__(self, group, plural, kind, namespaced=True, short_names=(), categories=(), subresources=(),
                 has_generation=False):
        self.group, self.version, self.plural, self.kind = group, "v1", plural, kind
        self.namespaced, self.short_names, self.categories = namespaced, list(short_names), list(categories)
        self.subresources, self.has_generation = list(subresources), has_generation

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def qualified(self):
        """The name the API server uses in messages: ``deployments.apps``, ``pods``."""
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def singular(self):
        return self.kind.lower()


RESOURCES = [
    ResourceType("", "namespaces", "Namespace", namespaced=False, short_names=["ns"], subresources=["status"]),
    ResourceType("", "pods", "Pod", short_names=["po"], categories=["all"], subresources=["status"]),
    ResourceType("", "events", "Event", short_names=["ev"]),
    ResourceType("", "services", "Service", short_names=["svc"], categories=["all"], subresources=["status"]),
    ResourceType("", "configmaps", "ConfigMap", short_names=["cm"]),
    ResourceType("", "secrets", "Secret"),
    ResourceType("apps", "deployments", "Deployment", short_names=["deploy"], categories=["all"],
                 subresources=["scale", "status"], has_generation=True),
    ResourceType("apps", "replicasets", "ReplicaSet", short_names=["rs"], categories=["all"],
                 subresources=["scale", "status"], has_generation=True),
]
BY_PATH = {(r.group, r.plural): r for r in RESOURCES}
BY_KIND = {(r.group, r.kind): r for r in RESOURCES}
DEPLOYMENTS = BY_PATH[("apps", "deployments")]
REPLICASETS = BY_PATH[("apps", "replicasets")]
PODS = BY_PATH[("", "pods")]
NAMESPACES = BY_PATH[("", "namespaces")]

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error the server answers with a ``Status`` object."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def _details(rtype, name):
    details = {"name": name, "kind": rtype.plural}
    if rtype.group:
        details["group"] = rtype.group
    return details


def not_found(rtype, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rtype.qualified, name), _details(rtype, name))


def already_exists(rtype, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rtype.qualified, name), _details(rtype, name))


def conflict(rtype, name):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; '
                    "please apply your changes to the latest version and try again" % (rtype.qualified, name),
                    _details(rtype, name))


def invalid(rtype, name, field, value, detail):
    message = '%s.%s "%s" is invalid: %s: Invalid value: %s: %s' % (
        rtype.kind, rtype.group or "core", name, field, json.dumps(value), detail)
    details = dict(_details(rtype, name), kind=rtype.kind,
                   causes=[{"reason": "FieldValueInvalid", "message": "Invalid value: %s" % detail, "field": field}])
    return ApiError(422, "Invalid", message, details)


def bad_request(message):
    return ApiError(400, "BadRequest", message)


# ----------------------------------------------------------------------------------------- small helpers


def now_rfc3339(ts=None):
    moment = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


def fnv32a(data):
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text):
    """k8s.io/apimachinery rand.SafeEncodeString: what makes pod-template-hash look like ``5d8f9c7b46``."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[ord(ch) % len(alphabet)] for ch in text)


def template_hash(template, collision_count=0):
    """The ``pod-template-hash``: FNV-32a of the template, as the controller computes it.

    The real controller hashes Go's deep-print of the struct; this hashes canonical JSON, so names differ
    from a real cluster's but have the same shape and the same stability.
    """
    data = json.dumps(strip_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def strip_hash(template):
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return template


def templates_equal(left, right):
    """deployment/util.EqualIgnoreHash."""
    return strip_hash(left) == strip_hash(right)


def revision_of(obj):
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def resolve_int_or_percent(value, total, round_up):
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100.0
        return int(-(-scaled // 1)) if round_up else int(scaled // 1)
    return int(value or 0)


def image_tag(image):
    name = image.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[colon + 1:] if colon > slash else ""


# -------------------------------------------------------------------------------------------- selectors


_SET_REQ = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def parse_label_selector(text):
    """Parse a label selector string into (key, op, values) requirements; ``None`` selects everything."""
    if not text:
        return None
    parts, depth, current = [], 0, ""
    for ch in text:  # split on commas that are not inside (a, b) value sets
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    requirements = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        match = _SET_REQ.match(part)
        if match:
            values = {v.strip() for v in match.group(3).split(",") if v.strip()}
            requirements.append((match.group(1), match.group(2), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append((key.strip(), "!=", {value.strip()}))
        elif "=" in part:
            key, value = re.split(r"==?", part, maxsplit=1)
            requirements.append((key.strip(), "=", {value.strip()}))
        elif part.startswith("!"):
            requirements.append((part[1:].strip(), "!", set()))
        else:
            requirements.append((part, "exists", set()))
    return requirements


def labels_match(requirements, labels):
    labels = labels or {}
    for key, op, values in requirements or ():
        present, value = key in labels, labels.get(key)
        if op == "=" and value not in values:
            return False
        if op == "!=" and present and value in values:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def selector_to_string(selector):
    """A LabelSelector object (matchLabels/matchExpressions) as a selector string."""
    parts = ["%s=%s" % kv for kv in sorted((selector or {}).get("matchLabels", {}).items())]
    for expr in (selector or {}).get("matchExpressions", []) or []:
        op = expr.get("operator")
        if op in ("In", "NotIn"):
            parts.append("%s %s (%s)" % (expr["key"], op.lower(), ",".join(expr.get("values", []))))
        elif op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append("!" + expr["key"])
    return ",".join(parts)


def parse_field_selector(text):
    if not text:
        return []
    requirements = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            key, value = part.split("!=", 1)
            op = "!="
        elif "=" in part:
            key, value = re.split(r"==?", part, maxsplit=1)
            op = "="
        else:
            raise bad_request('invalid field selector: "%s"' % part)
        key = key.strip()
        if key not in ("metadata.name", "metadata.namespace"):
            raise bad_request('field label not supported: %s' % key)
        requirements.append((key, op, value.strip()))
    return requirements


def fields_match(requirements, obj):
    meta = obj.get("metadata", {})
    for key, op, value in requirements:
        actual = meta.get(key.split(".", 1)[1], "")
        if (op == "=") != (actual == value):
            return False
    return True


# ---------------------------------------------------------------------------------------------- patches


def json_merge_patch(target, patch):
    """RFC 7386 JSON merge patch (``application/merge-patch+json``)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# Strategic merge patch metadata for the fields the served kinds have (x-kubernetes-patch-merge-key).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "hostAliases": "ip", "conditions": "type", "ownerReferences": "uid", "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name", "schedulingGates": "name",
}
PRIMITIVE_SET_FIELDS = {"finalizers"}


def _merge_key(field, items):
    if field == "ports":  # container ports merge on containerPort, Service ports on port
        return "containerPort" if any(isinstance(i, dict) and "containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target, patch):
    """``application/strategic-merge-patch+json``, with the directives kubectl sends.

    Lists with a merge key merge item by item (``$patch: delete`` removes one, ``$patch: replace`` replaces
    the list), ``$setElementOrder/<field>`` orders them, ``$retainKeys`` drops the keys not listed,
    ``$deleteFromPrimitiveList/<field>`` removes values, ``finalizers`` is a set; other lists are replaced.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(field, result[field], order)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(field, current, patch_items):
    current = copy.deepcopy(current) if isinstance(current, list) else []
    if field in PRIMITIVE_SET_FIELDS:
        merged = list(current)
        merged.extend(item for item in patch_items if item not in merged)
        return merged
    key = _merge_key(field, list(current) + list(patch_items))
    if not key or not all(isinstance(item, dict) for item in patch_items):
        return copy.deepcopy(patch_items)
    if any(item.get("$patch") == "replace" for item in patch_items):
        return [copy.deepcopy(i) for i in patch_items if i.get("$patch") != "replace"]
    for item in patch_items:
        index = next((n for n, old in enumerate(current) if isinstance(old, dict) and old.get(key) == item.get(key)),
                     None)
        if item.get("$patch") == "delete":
            if index is not None:
                del current[index]
        elif index is None:
            current.append(strategic_merge_patch({}, item))
        else:
            current[index] = strategic_merge_patch(current[index], item)
    return current


def _apply_order(field, items, order):
    if not items:
        return items
    key = _merge_key(field, items)

    def ident(item):
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(entry) for entry in order]
    ranked = sorted(enumerate(items), key=lambda pair: (
        wanted.index(ident(pair[1])) if ident(pair[1]) in wanted else len(wanted), pair[0]))
    return [item for _, item in ranked]


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", "invalid JSON pointer: %s" % path)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(doc, parts):
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        else:
            doc = doc[part]
    return doc


def json_patch(doc, operations):
    """RFC 6902 JSON patch (``application/json-patch+json``): add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise ApiError(422, "Invalid", "testing value %s failed" % op["path"])
                continue
            if kind in ("move", "copy"):
                from_parts = _pointer(op["from"])
                value = copy.deepcopy(_walk(doc, from_parts))
                if kind == "move":
                    doc = _remove(doc, from_parts)
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                _walk(doc, parts)  # replace needs the target to exist
                doc = _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            else:
                raise bad_request("unknown json patch operation: %s" % kind)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", "the json patch could not be applied: %s %s (%r)" % (
                op.get("op"), op.get("path"), exc)) from exc
    return doc


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    else:
        parent[last] = value
    return doc


def _remove(doc, parts):
    if not parts:
        return None
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


# ------------------------------------------------------------------------------------------- defaulting


def default_pod_spec(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        tag = image_tag(container.get("image", ""))
        container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def default_template(template):
    metadata = template.setdefault("metadata", {})
    metadata.setdefault("creationTimestamp", None)
    default_pod_spec(template.setdefault("spec", {}))


def apply_defaults(rtype, obj):
    """What the API server's defaulting does to the kinds served here (the fields clients compare)."""
    spec = obj.get("spec")
    if rtype is DEPLOYMENTS:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_template(spec.setdefault("template", {}))
    elif rtype is REPLICASETS:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        default_template(spec.setdefault("template", {}))
    elif rtype is PODS and isinstance(spec, dict):
        default_pod_spec(spec)
    elif rtype.kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") is None:
            spec["clusterIP"] = "10.96.%d.%d" % (random.randint(0, 255), random.randint(1, 254))
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif rtype is NAMESPACES:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def validate(rtype, obj, old=None):
    """The validation that catches a broken manifest before it is rolled out (a small subset)."""
    name = obj["metadata"].get("name", "")
    if rtype not in (DEPLOYMENTS, REPLICASETS):
        return
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise invalid(rtype, name, "spec.selector", selector, "empty selector is invalid for deployment")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not labels_match(parse_label_selector(selector_to_string(selector)), labels):
        raise invalid(rtype, name, "spec.template.metadata.labels", labels,
                      "`selector` does not match template `labels`")
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        raise invalid(rtype, name, "spec.template.spec.containers", [], "Required value")
    for index, container in enumerate(containers):
        if not container.get("name") or not container.get("image"):
            raise invalid(rtype, name, "spec.template.spec.containers[%d]" % index, container,
                          "name and image are required")
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        raise invalid(rtype, name, "spec.selector", selector, "field is immutable")


# ---------------------------------------------------------------------------------------------- storage


class Store:
    """All objects, one global resourceVersion counter, and the event history that watches read."""

    HISTORY = 5000

    def __init__(self, state_file=None):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects = {}  # (group, plural, namespace, name) -> object
        self.rv = 1
        self.history = deque(maxlen=self.HISTORY)  # (rv, type, rtype key, object)
        self.pod_ready_at = {}  # pod uid -> wall-clock time it becomes ready, None if never
        self.state_file = pathlib.Path(state_file) if state_file else None
        if self.state_file and self.state_file.exists():
            self._load()

    # -- persistence
    def _load(self):
        state = json.loads(self.state_file.read_text())
        self.rv = int(state.get("resourceVersion", 1))
        for obj in state.get("objects", []):
            rtype = self.rtype_of(obj)
            meta = obj["metadata"]
            self.objects[(rtype.group, rtype.plural, meta.get("namespace", ""), meta["name"])] = obj
        self.pod_ready_at = dict(state.get("podReadyAt", {}))

    def save(self):
        if not self.state_file:
            return
        state = {"resourceVersion": self.rv, "objects": list(self.objects.values()), "podReadyAt": self.pod_ready_at}
        fd, tmp = tempfile.mkstemp(dir=str(self.state_file.parent), prefix=".k8s-state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle)
        os.replace(tmp, self.state_file)

    # -- access
    @staticmethod
    def rtype_of(obj):
        api_version = obj.get("apiVersion", "")
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        return BY_KIND[(group, obj.get("kind"))]

    def get(self, rtype, namespace, name):
        return self.objects.get((rtype.group, rtype.plural, namespace if rtype.namespaced else "", name))

    def list(self, rtype, namespace=None, label_selector=None, field_selector=None):
        items = []
        for (group, plural, ns, _), obj in sorted(self.objects.items()):
            if (group, plural) != (rtype.group, rtype.plural):
                continue
            if namespace and rtype.namespaced and ns != namespace:
                continue
            if not labels_match(label_selector, obj["metadata"].get("labels")):
                continue
            if not fields_match(field_selector or [], obj):
                continue
            items.append(obj)
        return items

    def put(self, rtype, obj, event):
        """Store ``obj`` (ADDED or MODIFIED) with the next resourceVersion and wake the watches."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[(rtype.group, rtype.plural, meta.get("namespace", "") if rtype.namespaced else "",
                      meta["name"])] = obj
        self.history.append((self.rv, event, (rtype.group, rtype.plural), copy.deepcopy(obj)))
        self.changed.notify_all()
        return obj

    def delete(self, rtype, obj):
        self.rv += 1
        meta = obj["metadata"]
        self.objects.pop((rtype.group, rtype.plural, meta.get("namespace", "") if rtype.namespaced else "",
                          meta["name"]), None)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, "DELETED", (rtype.group, rtype.plural), gone))
        if rtype is PODS:
            self.pod_ready_at.pop(meta.get("uid"), None)
        self.changed.notify_all()
        return gone


# ------------------------------------------------------------------------------------------- controller


class DeploymentController:
    """The deployment and replicaset controllers of kube-controller-manager, simulated.

    ``pod_ready_seconds`` is how long a new pod takes to become ready; a rolling update of N replicas with
    the default 25% surge takes about N times that. ``fail_marker``: pods of an image whose tag contains
    it never become ready.
    """

    def __init__(self, api, pod_ready_seconds=0.5, fail_marker="fail"):
        self.api, self.store = api, api.store
        self.pod_ready_seconds, self.fail_marker = pod_ready_seconds, fail_marker
        # Which revision's pods exist and are ready, over time (the online cutover's rollout timeline):
        # one entry per change, {"ts", "time", "deployment", "revisions": {rev: {"image", "pods", "ready"}}}.
        self.timeline = deque(maxlen=10000)
        self._last_seen = {}

    def record_timeline(self):
        """Append an entry for each Deployment whose pods per revision (count, ready, image) changed."""
        for deployment in self.store.list(DEPLOYMENTS):
            key = "%s/%s" % (deployment["metadata"].get("namespace"), deployment["metadata"]["name"])
            revisions = {}
            for rs in self.owned(REPLICASETS, deployment):
                pods = self.owned(PODS, rs)
                if not pods:
                    continue
                containers = (rs["spec"]["template"].get("spec") or {}).get("containers") or [{}]
                revisions[str(revision_of(rs))] = {"image": containers[0].get("image"), "pods": len(pods),
                                                   "ready": sum(1 for p in pods if self.pod_is_ready(p))}
            if self._last_seen.get(key) != revisions:
                self._last_seen[key] = revisions
                now = time.time()
                self.timeline.append({"ts": round(now, 3), "time": now_rfc3339(now), "deployment": key,
                                      "revisions": revisions})

    def image_fails(self, pod_spec):
        if not self.fail_marker:
            return False
        return any(self.fail_marker in image_tag(c.get("image", "")) for c in pod_spec.get("containers") or [])

    # -- the loop
    def reconcile_all(self):
        with self.store.lock:
            for deployment in list(self.store.list(DEPLOYMENTS)):
                self.reconcile_deployment(deployment["metadata"].get("namespace"), deployment["metadata"]["name"])
            for rs in list(self.store.list(REPLICASETS)):
                self.sync_replicaset(rs)
            self.update_pods()
            self.record_timeline()

    def _write(self, rtype, obj, before):
        if obj != before:
            self.store.put(rtype, obj, "MODIFIED")
            return True
        return False

    def owned(self, rtype, owner):
        uid = owner["metadata"]["uid"]
        return [obj for obj in self.store.list(rtype, owner["metadata"].get("namespace"))
                if any(ref.get("uid") == uid and ref.get("controller") for ref in
                       obj["metadata"].get("ownerReferences") or [])]

    def reconcile_deployment(self, namespace, name):
        deployment = self.store.get(DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        before = copy.deepcopy(deployment)
        spec = deployment["spec"]
        status = copy.deepcopy(deployment.get("status") or {})
        replica_sets = sorted(self.owned(REPLICASETS, deployment), key=lambda rs: rs["metadata"]["creationTimestamp"])
        new_rs = next((rs for rs in replica_sets if templates_equal(rs["spec"]["template"], spec["template"])), None)
        old_rss = [rs for rs in replica_sets if rs is not new_rs]
        max_old_revision = max((revision_of(rs) for rs in old_rss), default=0)
        paused = bool(spec.get("paused"))

        if new_rs is None and not paused:
            new_rs = self.create_replicaset(deployment, max_old_revision + 1)
            message = 'Created new replica set "%s"' % new_rs["metadata"]["name"]
            self.set_condition(status, "Progressing", "True", "NewReplicaSetCreated", message)
        elif new_rs is not None:
            rs_before = copy.deepcopy(new_rs)
            annotations = new_rs["metadata"].setdefault("annotations", {})
            if revision_of(new_rs) <= max_old_revision:  # a rollback re-uses it: it gets the next revision
                history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
                history.append(annotations.get(REVISION, ""))
                annotations[REVISION_HISTORY] = ",".join(h for h in history if h)
                annotations[REVISION] = str(max_old_revision + 1)
            for key, value in (deployment["metadata"].get("annotations") or {}).items():
                if key not in ANNOTATIONS_TO_SKIP:
                    annotations[key] = value
            self._write(REPLICASETS, new_rs, rs_before)
            if self.find_condition(status, "Progressing") is None:
                message = 'Found new replica set "%s"' % new_rs["metadata"]["name"]
                self.set_condition(status, "Progressing", "True", "FoundNewReplicaSet", message)
        if new_rs is not None:
            deployment["metadata"].setdefault("annotations", {})[REVISION] = str(revision_of(new_rs))

        desired = int(spec.get("replicas", 1))
        if not paused and new_rs is not None:
            self.scale(deployment, new_rs, old_rss, desired)
        all_rss = ([new_rs] if new_rs is not None else []) + old_rss
        self.cleanup_history(deployment, old_rss)
        self.calculate_status(deployment, status, new_rs, all_rss, desired, paused)
        deployment["status"] = status
        self._write(DEPLOYMENTS, deployment, before)

    def create_replicaset(self, deployment, revision):
        spec = deployment["spec"]
        pod_hash = template_hash(spec["template"], (deployment.get("status") or {}).get("collisionCount", 0))
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        annotations = {k: v for k, v in (deployment["metadata"].get("annotations") or {}).items()
                       if k not in ANNOTATIONS_TO_SKIP}
        desired = int(spec.get("replicas", 1))
        surge = self.max_surge(deployment, desired)
        annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(desired),
                            MAX_REPLICAS: str(desired + surge)})
        meta = deployment["metadata"]
        rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": "%s-%s" % (meta["name"], pod_hash), "namespace": meta.get("namespace"),
                "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template},
        }
        return self.api.create_object(REPLICASETS, meta.get("namespace"), rs, from_controller=True)

    @staticmethod
    def max_surge(deployment, desired):
        strategy = deployment["spec"].get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return 0
        return resolve_int_or_percent((strategy.get("rollingUpdate") or {}).get("maxSurge", "25%"), desired, True)

    @staticmethod
    def max_unavailable(deployment, desired):
        strategy = deployment["spec"].get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return 0
        rolling = strategy.get("rollingUpdate") or {}
        surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), desired, True)
        unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), desired, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return min(unavailable, desired)

    def available(self, rs):
        return int((rs.get("status") or {}).get("availableReplicas", 0))

    def set_replicas(self, rs, count):
        if rs["spec"].get("replicas") != count:
            before = copy.deepcopy(rs)
            rs["spec"]["replicas"] = count
            rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
            self._write(REPLICASETS, rs, before)
            self.sync_replicaset(rs)

    def scale(self, deployment, new_rs, old_rss, desired):
        """One step of the rolling update (or of Recreate)."""
        strategy = (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate")
        if strategy == "Recreate":
            active_old = [rs for rs in old_rss if rs["spec"].get("replicas", 0) > 0]
            for rs in active_old:
                self.set_replicas(rs, 0)
            if not active_old:
                self.set_replicas(new_rs, desired)
            return
        surge, unavailable = self.max_surge(deployment, desired), self.max_unavailable(deployment, desired)
        all_rss = [new_rs] + old_rss
        total = sum(rs["spec"].get("replicas", 0) for rs in all_rss)
        if new_rs["spec"].get("replicas", 0) > desired:
            self.set_replicas(new_rs, desired)
        elif new_rs["spec"].get("replicas", 0) < desired:
            room = min(desired + surge - total, desired - new_rs["spec"].get("replicas", 0))
            if room > 0:
                self.set_replicas(new_rs, new_rs["spec"].get("replicas", 0) + room)
        # Scale down old replica sets: unhealthy pods first, then down to the minimum availability.
        min_available = desired - unavailable
        all_pods = sum(rs["spec"].get("replicas", 0) for rs in all_rss)
        new_unavailable = new_rs["spec"].get("replicas", 0) - self.available(new_rs)
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        for rs in old_rss:
            unhealthy = rs["spec"].get("replicas", 0) - self.available(rs)
            cut = min(max(unhealthy, 0), budget)
            if cut > 0:
                self.set_replicas(rs, rs["spec"]["replicas"] - cut)
                budget -= cut
        available = sum(self.available(rs) for rs in all_rss)
        scale_down = min(available - min_available, budget)
        for rs in old_rss:
            if scale_down <= 0:
                break
            cut = min(rs["spec"].get("replicas", 0), scale_down)
            if cut > 0:
                self.set_replicas(rs, rs["spec"]["replicas"] - cut)
                scale_down -= cut

    def cleanup_history(self, deployment, old_rss):
        limit = deployment["spec"].get("revisionHistoryLimit", 10)
        idle = sorted((rs for rs in old_rss if rs["spec"].get("replicas", 0) == 0
                       and not (rs.get("status") or {}).get("replicas")), key=revision_of)
        for rs in idle[:max(len(idle) - limit, 0)]:
            self.api.delete_object(REPLICASETS, rs, propagation="Background")
            old_rss.remove(rs)

    @staticmethod
    def find_condition(status, kind):
        return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)

    def set_condition(self, status, kind, value, reason, message, force_update=False):
        """deployment/util.SetDeploymentCondition (``force_update`` for the progress case that bumps lastUpdateTime)."""
        current = self.find_condition(status, kind)
        if current and current["status"] == value and current["reason"] == reason and not force_update:
            return
        stamp = now_rfc3339()
        condition = {"type": kind, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                     "reason": reason, "message": message}
        if current and current["status"] == value:
            condition["lastTransitionTime"] = current["lastTransitionTime"]
        status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != kind] + [condition]

    def calculate_status(self, deployment, status, new_rs, all_rss, desired, paused):
        old_status = deployment.get("status") or {}

        def total(field, rss):
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in rss)

        replicas = total("replicas", all_rss)
        updated = total("replicas", [new_rs]) if new_rs is not None else 0
        ready, available = total("readyReplicas", all_rss), total("availableReplicas", all_rss)
        spec_total = sum(rs["spec"].get("replicas", 0) for rs in all_rss)
        fields = {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": replicas,
                  "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                  "unavailableReplicas": max(spec_total - available, 0)}
        for key, value in fields.items():  # zero values are omitted (omitempty), as the API server does
            if value or key == "observedGeneration":
                status[key] = value
            else:
                status.pop(key, None)
        if available >= desired - self.max_unavailable(deployment, desired):
            self.set_condition(status, "Available", "True", "MinimumReplicasAvailable",
                               "Deployment has minimum availability.")
        else:
            self.set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.")
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        if paused:
            self.set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
            return
        current = self.find_condition(status, "Progressing")
        if current and current["reason"] == "DeploymentPaused":
            self.set_condition(status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            current = self.find_condition(status, "Progressing")
        complete = updated == desired and replicas == desired and available == desired
        old_old = int(old_status.get("replicas", 0)) - int(old_status.get("updatedReplicas", 0))
        progressing = (updated > int(old_status.get("updatedReplicas", 0)) or replicas - updated < old_old
                       or ready > int(old_status.get("readyReplicas", 0))
                       or available > int(old_status.get("availableReplicas", 0)))
        if complete:
            self.set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                               'ReplicaSet "%s" has successfully progressed.' % rs_name)
        elif progressing:
            force = current is not None and current["reason"] == "ReplicaSetUpdated"
            self.set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                               'ReplicaSet "%s" is progressing.' % rs_name, force_update=force)
        elif current and current["reason"] not in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
            deadline = deployment["spec"].get("progressDeadlineSeconds")
            if deadline is not None and parse_rfc3339(current["lastUpdateTime"]) + int(deadline) < time.time():
                self.set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                                   'ReplicaSet "%s" has timed out progressing.' % rs_name)

    # -- the replicaset controller: pods for each replica set
    def sync_replicaset(self, rs):
        rs = self.store.get(REPLICASETS, rs["metadata"].get("namespace"), rs["metadata"]["name"])
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self.owned(PODS, rs)
        wanted = int(rs["spec"].get("replicas", 1))
        for _ in range(wanted - len(pods)):
            self.create_pod(rs)
        if len(pods) > wanted:  # delete not-ready pods first, then the youngest
            victims = sorted(pods, key=lambda p: (self.pod_is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in victims[:len(pods) - wanted]:
                self.api.delete_object(PODS, pod, propagation="Background")
        self.update_rs_status(rs)

    def create_pod(self, rs):
        template = copy.deepcopy(rs["spec"]["template"])
        meta = template.get("metadata") or {}
        suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "%s-%s" % (rs["metadata"]["name"], suffix), "generateName": rs["metadata"]["name"] + "-",
                "namespace": rs["metadata"].get("namespace"), "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                                     "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": dict(template.get("spec") or {}, nodeName="standin-node"),
            "status": {"phase": "Pending"},
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        pod = self.api.create_object(PODS, pod["metadata"]["namespace"], pod, from_controller=True)
        fails = self.image_fails(pod["spec"])
        self.store.pod_ready_at[pod["metadata"]["uid"]] = None if fails else time.time() + self.pod_ready_seconds
        self.refresh_pod(pod)
        return pod

    def pod_is_ready(self, pod):
        ready_at = self.store.pod_ready_at.get(pod["metadata"].get("uid"))
        return ready_at is not None and ready_at <= time.time()

    def refresh_pod(self, pod):
        before = copy.deepcopy(pod)
        ready = self.pod_is_ready(pod)
        fails = self.store.pod_ready_at.get(pod["metadata"]["uid"], 0) is None
        started = now_rfc3339(parse_rfc3339(pod["metadata"]["creationTimestamp"]))
        statuses = []
        for container in pod["spec"].get("containers") or []:
            entry = {"name": container.get("name"), "image": container.get("image"), "imageID": "",
                     "ready": ready, "restartCount": 0, "started": ready}
            if fails:
                entry["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "%s"'
                                              % container.get("image")}}
            elif ready:
                entry["state"] = {"running": {"startedAt": started}}
            else:
                entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
            statuses.append(entry)
        ready_text = "True" if ready else "False"
        old_conditions = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        conditions = []
        for kind, value in (("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", ready_text),
                            ("Ready", ready_text)):
            old = old_conditions.get(kind)
            stamp = old["lastTransitionTime"] if old and old["status"] == value else now_rfc3339()
            conditions.append({"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp})
        pod["status"] = {"phase": "Running" if ready else "Pending", "conditions": conditions,
                         "containerStatuses": statuses, "hostIP": "127.0.0.1",
                         "podIP": (pod.get("status") or {}).get("podIP") or "10.244.0.%d" % random.randint(2, 254),
                         "startTime": started, "qosClass": "BestEffort"}
        return self._write(PODS, pod, before)

    def update_pods(self):
        touched = set()
        for pod in list(self.store.list(PODS)):
            if pod["metadata"].get("uid") in self.store.pod_ready_at and self.refresh_pod(pod):
                for ref in pod["metadata"].get("ownerReferences") or []:
                    touched.add((pod["metadata"].get("namespace"), ref.get("name")))
        for namespace, name in touched:
            rs = self.store.get(REPLICASETS, namespace, name)
            if rs is not None:
                self.update_rs_status(rs)

    def update_rs_status(self, rs):
        before = copy.deepcopy(rs)
        pods = self.owned(PODS, rs)
        ready = sum(1 for p in pods if self.pod_is_ready(p))
        min_ready = int(rs["spec"].get("minReadySeconds", 0))
        available = sum(1 for p in pods if self.pod_is_ready(p) and (
            self.store.pod_ready_at[p["metadata"]["uid"]] + min_ready <= time.time()))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": available, "observedGeneration": rs["metadata"].get("generation", 1)}
        rs["status"] = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        self._write(REPLICASETS, rs, before)


# -------------------------------------------------------------------------------------------- the API


class KubeApi:
    """The API server's logic, independent of HTTP: what a request does to the store."""

    def __init__(self, state_file=None, pod_ready_seconds=0.5, fail_marker="fail", token=None,
                 aggregated_discovery=True):
        self.store = Store(state_file)
        self.token = token
        self.aggregated_discovery = aggregated_discovery
        self.controller = DeploymentController(self, pod_ready_seconds=pod_ready_seconds, fail_marker=fail_marker)
        with self.store.lock:
            for name in ("default", "kube-system", "kube-public"):
                if self.store.get(NAMESPACES, "", name) is None:
                    self.create_object(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}})

    # -- writes
    def create_object(self, rtype, namespace, body, dry_run=False, from_controller=False):
        with self.store.lock:
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            obj = copy.deepcopy(body)
            self._check_kind(rtype, obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            name = meta.get("name")
            if not name:
                raise invalid(rtype, "", "metadata.name", "", "name or generateName is required")
            if not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
                raise invalid(rtype, name, "metadata.name", name, "a lowercase RFC 1123 subdomain must consist of "
                              "lower case alphanumeric characters, '-' or '.'")
            if rtype.namespaced:
                namespace = namespace or meta.get("namespace") or "default"
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise bad_request("the namespace of the provided object does not match the namespace sent "
                                      "on the request")
                if self.store.get(NAMESPACES, "", namespace) is None:
                    raise not_found(NAMESPACES, namespace)
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if self.store.get(rtype, namespace, name) is not None:
                raise already_exists(rtype, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            for key in ("resourceVersion", "deletionTimestamp", "selfLink"):
                meta.pop(key, None)
            if rtype.has_generation:
                meta["generation"] = 1
            if rtype in (DEPLOYMENTS, REPLICASETS) and not from_controller:
                obj.pop("status", None)
            apply_defaults(rtype, obj)
            validate(rtype, obj)
            if dry_run:
                return obj
            self.store.put(rtype, obj, "ADDED")
            if from_controller:
                return obj
            written = copy.deepcopy(obj)  # answer with the object as written, before the controllers react
            self.after_write()
            return written

    def update_object(self, rtype, namespace, name, body, subresource=None, dry_run=False, check_rv=True):
        with self.store.lock:
            old = self.store.get(rtype, namespace, name)
            if old is None:
                raise not_found(rtype, name)
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            obj = copy.deepcopy(body)
            if subresource == "scale":
                return self._update_scale(rtype, old, obj, dry_run)
            self._check_kind(rtype, obj)
            meta = obj.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise bad_request('the name of the object (%s) does not match the name on the URL (%s)' % (
                    meta.get("name"), name))
            sent_rv = meta.get("resourceVersion")
            if check_rv and sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rtype, name)
            for key in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
                else:
                    meta.pop(key, None)
            if subresource == "status":  # only the status changes through /status
                new = copy.deepcopy(old)
                new["status"] = obj.get("status", {})
                obj = new
            elif rtype.has_generation:  # and never through the main resource
                obj.pop("status", None)
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
            apply_defaults(rtype, obj)
            validate(rtype, obj, old)
            if rtype.has_generation and obj.get("spec") != old.get("spec"):
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old or dry_run:
                return obj
            self.store.put(rtype, obj, "MODIFIED")
            written = copy.deepcopy(obj)
            self.after_write()
            return written

    def _update_scale(self, rtype, old, scale, dry_run):
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(rtype, old["metadata"]["name"], "spec.replicas", replicas, "must be a non-negative integer")
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        if new != old and not dry_run:
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self.store.put(rtype, new, "MODIFIED")
            self.after_write()
        return self.scale_of(rtype, new)

    @staticmethod
    def scale_of(rtype, obj):
        meta = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": selector_to_string(obj["spec"].get("selector"))}}

    def patch_object(self, rtype, namespace, name, content_type, patch, subresource=None, dry_run=False):
        with self.store.lock:
            old = self.store.get(rtype, namespace, name)
            if content_type == "application/apply-patch+yaml":
                if old is None:  # server-side apply creates
                    return self.create_object(rtype, namespace, patch, dry_run=dry_run), True
            if old is None:
                raise not_found(rtype, name)
            current = self.scale_of(rtype, old) if subresource == "scale" else copy.deepcopy(old)
            if content_type == "application/json-patch+json":
                result = json_patch(current, patch)
            elif content_type == "application/merge-patch+json":
                result = json_merge_patch(current, patch)
            elif content_type in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
                if not isinstance(patch, dict):
                    raise bad_request("a strategic merge patch must be a JSON object")
                result = strategic_merge_patch(current, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, application/merge-"
                               "patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json")
            patch_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            result.setdefault("metadata", {})["resourceVersion"] = patch_rv or old["metadata"]["resourceVersion"]
            return self.update_object(rtype, namespace, name, result, subresource=subresource, dry_run=dry_run), False

    def delete_object(self, rtype, obj, propagation="Background", dry_run=False):
        with self.store.lock:
            if dry_run:
                return obj
            gone = self.store.delete(rtype, obj)
            uid = obj["metadata"].get("uid")
            for child_type in (REPLICASETS, PODS) if rtype in (DEPLOYMENTS, REPLICASETS) else ():
                for child in list(self.store.list(child_type, obj["metadata"].get("namespace"))):
                    refs = child["metadata"].get("ownerReferences") or []
                    if not any(ref.get("uid") == uid for ref in refs):
                        continue
                    if propagation == "Orphan":
                        before = copy.deepcopy(child)
                        child["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                        self.controller._write(child_type, child, before)
                    else:
                        self.delete_object(child_type, child)
            if rtype is NAMESPACES:
                for (group, plural, namespace, _), child in list(self.store.objects.items()):
                    if namespace == obj["metadata"]["name"] and BY_PATH[(group, plural)].namespaced:
                        self.store.delete(BY_PATH[(group, plural)], child)
            return gone

    def after_write(self):
        """Let the controllers react at once, as a real controller does within milliseconds of a write."""
        self.controller.reconcile_all()
        self.store.save()

    @staticmethod
    def _check_kind(rtype, obj):
        if obj.get("kind") and obj["kind"] != rtype.kind:
            raise bad_request("the object kind %s does not match the URL's %s" % (obj["kind"], rtype.kind))
        if obj.get("apiVersion") and obj["apiVersion"] != rtype.api_version:
            raise bad_request("the object apiVersion %s does not match the URL's %s" % (
                obj["apiVersion"], rtype.api_version))
        obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version

    # -- seeding (for rehearsals and tests)
    def ensure_namespace(self, name):
        with self.store.lock:
            if self.store.get(NAMESPACES, "", name) is None:
                self.create_object(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": name}})

    def seed_deployment(self, name, namespace, image, replicas=2, container_name="app", labels=None,
                        container_port=None, progress_deadline_seconds=600, annotations=None):
        """Create the Deployment of the app's current version, already rolled out: revision 1, all pods ready."""
        labels = labels or {"app": name}
        container = {"name": container_name, "image": image}
        if container_port:
            container["ports"] = [{"containerPort": container_port}]
        manifest = {"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                                 "annotations": dict(annotations or {})},
                    "spec": {"replicas": replicas, "progressDeadlineSeconds": progress_deadline_seconds,
                             "selector": {"matchLabels": dict(labels)},
                             "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}}}}
        return self.seed_object(manifest)

    def seed_object(self, manifest):
        """Create any served object and fast-forward the controllers until it has settled."""
        rtype = Store.rtype_of(manifest)
        namespace = manifest.get("metadata", {}).get("namespace") or "default"
        with self.store.lock:
            if rtype.namespaced:
                self.ensure_namespace(namespace)
            self.create_object(rtype, namespace, manifest)
            for _ in range(100):  # settle: every pod ready at once, then let the controller catch up
                for uid, ready_at in self.store.pod_ready_at.items():
                    if ready_at is not None:
                        self.store.pod_ready_at[uid] = min(ready_at, time.time())
                rv = self.store.rv
                self.controller.reconcile_all()
                if self.store.rv == rv:
                    break
            self.store.save()
            return copy.deepcopy(self.store.get(rtype, namespace, manifest["metadata"]["name"]))


# ----------------------------------------------------------------------------------------- discovery


def resource_list(group):
    entries = []
    for rtype in (r for r in RESOURCES if r.group == group):
        entries.append({"name": rtype.plural, "singularName": rtype.singular, "namespaced": rtype.namespaced,
                        "kind": rtype.kind, "verbs": ALL_VERBS, "shortNames": rtype.short_names,
                        "categories": rtype.categories, "storageVersionHash": base64.b64encode(
                            rtype.qualified.encode()).decode()[:11]})
        for sub in rtype.subresources:
            entry = {"name": "%s/%s" % (rtype.plural, sub), "singularName": "", "namespaced": rtype.namespaced,
                     "kind": rtype.kind, "verbs": SUB_VERBS}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            entries.append(entry)
    for entry in entries:
        if not entry.get("shortNames"):
            entry.pop("shortNames", None)
        if not entry.get("categories"):
            entry.pop("categories", None)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "%s/v1" % group if group else "v1",
            "resources": entries}


def group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}


def aggregated(group, version):
    """apidiscovery.k8s.io ``APIGroupDiscoveryList`` for ``/api`` (group "") or ``/apis`` (the groups)."""
    groups = [""] if group == "" else ["apps"]
    items = []
    for name in groups:
        resources = []
        for rtype in (r for r in RESOURCES if r.group == name):
            entry = {"resource": rtype.plural, "responseKind": {"group": "", "version": "", "kind": rtype.kind},
                     "scope": "Namespaced" if rtype.namespaced else "Cluster", "singularResource": rtype.singular,
                     "verbs": ALL_VERBS}
            if rtype.short_names:
                entry["shortNames"] = rtype.short_names
            if rtype.categories:
                entry["categories"] = rtype.categories
            subs = []
            for sub in rtype.subresources:
                kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale" else \
                    {"group": "", "version": "", "kind": rtype.kind}
                subs.append({"subresource": sub, "responseKind": kind, "verbs": SUB_VERBS})
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        item = {"metadata": {"creationTimestamp": None},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]}
        if name:
            item["metadata"]["name"] = name
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/%s" % version, "metadata": {},
            "items": items}


def openapi_v3_index():
    return {"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=CARBOTSTANDIN1"}}}


def openapi_v3_apps():
    """Just enough OpenAPI v3 for kubectl's fieldValidation check (see the module docstring)."""
    paths = {}
    for rtype in (DEPLOYMENTS, REPLICASETS):
        gvk = {"group": "apps", "version": "v1", "kind": rtype.kind}
        paths["/apis/apps/v1/namespaces/{namespace}/%s/{name}" % rtype.plural] = {
            "patch": {"operationId": "patchAppsV1Namespaced%s" % rtype.kind,
                      "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
                      # kubectl looks for fieldValidation among the operation's parameters
                      "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}}
                                     for name in ("dryRun", "fieldManager", "fieldValidation", "force")],
                      "responses": {"200": {"description": "OK"}}},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"}, "paths": paths,
            "components": {}}


# ----------------------------------------------------------------------------------------------- tables


def human_age(created):
    """apimachinery duration.HumanDuration, as the AGE column shows it."""
    seconds = max(int(time.time() - parse_rfc3339(created)), 0)
    if seconds < 120:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 10:
        return "%dm%ds" % (minutes, seconds % 60) if seconds % 60 else "%dm" % minutes
    if minutes < 180:
        return "%dm" % minutes
    hours = minutes // 60
    if hours < 8:
        return "%dh%dm" % (hours, minutes % 60) if minutes % 60 else "%dh" % hours
    if hours < 48:
        return "%dh" % hours
    return "%dd" % (hours // 24)


def _pod_status_text(pod):
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting")
        if waiting:
            return waiting.get("reason", "Waiting")
    return (pod.get("status") or {}).get("phase", "Unknown")


def table_for(rtype, objects, rv):
    """A meta.k8s.io/v1 Table, what kubectl get asks for (``Accept: ...;as=Table``) to print its columns."""
    def containers(obj):
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        return spec.get("containers") or []

    columns = [("Name", "string", 0)]
    if rtype is DEPLOYMENTS:
        columns += [("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0)]
    elif rtype is REPLICASETS:
        columns += [("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0)]
    elif rtype is PODS:
        columns += [("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0)]
    elif rtype is NAMESPACES:
        columns += [("Status", "string", 0)]
    columns += [("Age", "string", 0)]
    if rtype in (DEPLOYMENTS, REPLICASETS):
        columns += [("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
    elif rtype is PODS:
        columns += [("IP", "string", 1), ("Node", "string", 1)]
    rows = []
    for obj in objects:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        cells = [meta["name"]]
        if rtype is DEPLOYMENTS:
            cells += ["%d/%d" % (status.get("readyReplicas", 0), spec.get("replicas", 1)),
                      status.get("updatedReplicas", 0), status.get("availableReplicas", 0)]
        elif rtype is REPLICASETS:
            cells += [spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0)]
        elif rtype is PODS:
            statuses = status.get("containerStatuses") or []
            cells += ["%d/%d" % (sum(1 for c in statuses if c.get("ready")), len(spec.get("containers") or [])),
                      _pod_status_text(obj), "0"]
        elif rtype is NAMESPACES:
            cells += [status.get("phase", "Active")]
        cells.append(human_age(meta["creationTimestamp"]))
        if rtype in (DEPLOYMENTS, REPLICASETS):
            cells += [",".join(c.get("name", "") for c in containers(obj)),
                      ",".join(c.get("image", "") for c in containers(obj)), selector_to_string(spec.get("selector"))]
        elif rtype is PODS:
            cells += [status.get("podIP", "<none>"), spec.get("nodeName", "<none>")]
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                "metadata": copy.deepcopy(meta)}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
                                   "description": "", "priority": priority} for name, kind, priority in columns],
            "rows": rows}


# ------------------------------------------------------------------------------------------------ HTTP


def _accept_params(accept):
    """The media types of an Accept header, each as a dict of its parameters."""
    result = []
    for media in (accept or "").split(","):
        fields = [f.strip() for f in media.split(";")]
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        params["type"] = fields[0]
        result.append(params)
    return result


class Handler(http.server.BaseHTTPRequestHandler):
    """One request: route it, answer JSON (or a stream of watch events)."""

    protocol_version = "HTTP/1.1"
    server_version = "carbot-k8s-standin"
    api: KubeApi = None  # set on the subclass made per server

    def log_message(self, fmt, *args):  # quiet by default; the CLI turns it on with --verbose
        if getattr(self.server, "verbose", False):
            sys.stderr.write("k8s-standin: %s\n" % (fmt % args))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- plumbing
    def _send_json(self, code, body, content_type="application/json"):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            return json.loads(raw)
        except ValueError:
            if ctype == "application/apply-patch+yaml" or "yaml" in ctype:
                import yaml  # PyYAML comes with ansible-core; only server-side apply sends YAML

                return yaml.safe_load(raw)
            raise bad_request("the request body is not valid JSON") from None

    def _authorized(self):
        token = self.api.token
        if not token:
            return True
        header = self.headers.get("Authorization") or ""
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode())

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        try:
            if path in ("/healthz", "/livez", "/readyz"):
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if not self._authorized():
                self._body()  # drain it so the connection stays usable
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if method == "GET" and path == TIMELINE_PATH:  # the stand-in's own record, not a Kubernetes API
                since = float(query.get("since") or 0)
                with self.api.store.lock:
                    entries = [dict(e) for e in self.api.controller.timeline if e["ts"] >= since]
                self._send_json(200, {"timeline": entries})
                return
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            if method == "GET" and self._discovery(path):
                return
            self._resource(method, path, query, body)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - a server answers 500, it does not die
            self._send_json(500, ApiError(500, "InternalError", "stand-in error: %r" % exc).status())

    def _discovery(self, path):
        if path == "/version":
            self._send_json(200, KUBE_VERSION)
        elif path in ("/api", "/apis"):
            wanted = None
            if self.api.aggregated_discovery:
                for params in _accept_params(self.headers.get("Accept")):
                    if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
                        wanted = params.get("v")
                        break
            if wanted in ("v2", "v2beta1"):
                self._send_json(200, aggregated("" if path == "/api" else "apps", wanted),
                                "application/json;g=apidiscovery.k8s.io;v=%s;as=APIGroupDiscoveryList" % wanted)
            elif path == "/api":
                host, port = self.server.server_address[:2]
                self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%s" % (host, port)}]})
            else:
                self._send_json(200, group_list())
        elif path == "/api/v1":
            self._send_json(200, resource_list(""))
        elif path == "/apis/apps":
            self._send_json(200, dict(group_list()["groups"][0], kind="APIGroup", apiVersion="v1"))
        elif path == "/apis/apps/v1":
            self._send_json(200, resource_list("apps"))
        elif path == "/openapi/v3":
            self._send_json(200, openapi_v3_index())
        elif path == "/openapi/v3/apis/apps/v1":
            self._send_json(200, openapi_v3_apps())
        else:
            return False
        return True

    @staticmethod
    def _route(path):
        """(rtype, namespace, name, subresource, watch) for a resource path, or None."""
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
            group, rest = parts[1], parts[3:]
        else:
            return None
        watch = False
        if rest and rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, rest[2]) in BY_PATH:
            namespace, rest = rest[1], rest[2:]
        if not rest or (group, rest[0]) not in BY_PATH:
            return None
        rtype = BY_PATH[(group, rest[0])]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in rtype.subresources):
            return None
        return rtype, namespace, name, sub, watch

    def _resource(self, method, path, query, body):
        route = self._route(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        rtype, namespace, name, sub, watch = route
        if not rtype.namespaced:
            namespace = None
        dry_run = query.get("dryRun") == "All"
        api = self.api
        wants_table = any(p.get("as") == "Table" and p.get("g") == "meta.k8s.io"
                          for p in _accept_params(self.headers.get("Accept")))
        if method == "GET" and (watch or query.get("watch") in ("true", "1")):
            return self._watch(rtype, namespace, name, query, wants_table)
        if method == "GET" and name is None:
            with api.store.lock:
                labels = parse_label_selector(query.get("labelSelector"))
                fields = parse_field_selector(query.get("fieldSelector"))
                if wants_table:
                    return self._send_json(200, table_for(rtype, api.store.list(rtype, namespace, labels, fields),
                                                          str(api.store.rv)))
                items = []
                for obj in api.store.list(rtype, namespace, labels, fields):
                    item = copy.deepcopy(obj)
                    item.pop("kind", None)  # list items carry no kind/apiVersion, as from the API server
                    item.pop("apiVersion", None)
                    items.append(item)
                rv = str(api.store.rv)
            return self._send_json(200, {"kind": rtype.kind + "List", "apiVersion": rtype.api_version,
                                         "metadata": {"resourceVersion": rv}, "items": items})
        if method == "GET":
            with api.store.lock:
                obj = api.store.get(rtype, namespace, name)
                if obj is None:
                    raise not_found(rtype, name)
                if wants_table and sub is None:
                    return self._send_json(200, table_for(rtype, [obj], obj["metadata"]["resourceVersion"]))
                return self._send_json(200, api.scale_of(rtype, obj) if sub == "scale" else copy.deepcopy(obj))
        if method == "POST" and name is None:
            return self._send_json(201, api.create_object(rtype, namespace, body, dry_run=dry_run))
        if method == "PUT" and name is not None:
            return self._send_json(200, api.update_object(rtype, namespace, name, body, sub, dry_run=dry_run))
        if method == "PATCH" and name is not None:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            obj, created = api.patch_object(rtype, namespace, name, ctype, body, sub, dry_run=dry_run)
            return self._send_json(201 if created else 200, obj)
        if method == "DELETE" and name is not None:
            with api.store.lock:
                obj = api.store.get(rtype, namespace, name)
                if obj is None:
                    raise not_found(rtype, name)
                propagation = query.get("propagationPolicy") or (body or {}).get("propagationPolicy") or "Background"
                gone = api.delete_object(rtype, obj, propagation=propagation, dry_run=dry_run)
                if not dry_run:
                    api.store.save()
            if rtype is PODS:
                return self._send_json(200, gone)
            details = dict(_details(rtype, name), uid=gone["metadata"]["uid"])
            return self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                         "details": details})
        if method == "DELETE":  # deletecollection
            with api.store.lock:
                labels = parse_label_selector(query.get("labelSelector"))
                fields = parse_field_selector(query.get("fieldSelector"))
                gone = [api.delete_object(rtype, obj, dry_run=dry_run)
                        for obj in list(api.store.list(rtype, namespace, labels, fields))]
                api.store.save()
            return self._send_json(200, {"kind": rtype.kind + "List", "apiVersion": rtype.api_version,
                                         "metadata": {"resourceVersion": str(api.store.rv)}, "items": gone})
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _watch(self, rtype, namespace, name, query, wants_table=False):
        """A watch: chunked JSON lines of {"type", "object"} until timeoutSeconds or the server stops."""
        store = self.api.store
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        if name:
            fields.append(("metadata.name", "=", name))
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        rv_text = query.get("resourceVersion") or ""

        def matches(obj):
            meta = obj["metadata"]
            if namespace and rtype.namespaced and meta.get("namespace") != namespace:
                return False
            return labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

        initial = []
        with store.lock:
            if rv_text in ("", "0"):
                initial = [{"type": "ADDED", "object": copy.deepcopy(o)}
                           for o in store.list(rtype, namespace, labels, fields)]
                since = store.rv
            else:
                since = int(rv_text)
                oldest = store.history[0][0] if store.history else store.rv + 1
                if since < oldest - 1 and len(store.history) == store.history.maxlen:
                    initial = [{"type": "ERROR", "object": ApiError(
                        410, "Expired", "too old resource version: %s (%s)" % (since, oldest)).status()}]
                    deadline = 0
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def send(event):
            if wants_table and event["type"] != "ERROR":  # kubectl get -w: each event's object is a one-row Table
                obj = event["object"]
                event = {"type": event["type"], "object": table_for(rtype, [obj], obj["metadata"]["resourceVersion"])}
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            for event in initial:
                send(event)
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                with store.lock:
                    events = [(rv, kind, obj) for rv, kind, key, obj in store.history
                              if rv > since and key == (rtype.group, rtype.plural) and matches(obj)]
                    if not events:
                        store.changed.wait(timeout=min(0.5, max(deadline - time.monotonic(), 0)))
                        continue
                    since = store.rv
                for _, kind, obj in events:
                    send({"type": kind, "object": obj})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.close_connection = True


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    verbose = False

    def __init__(self, address, handler, ssl_context=None):
        self.stopping = threading.Event()
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1/localhost; returns (cert path, key path, PEM bytes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carbot-k8s-standin")])
    moment = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(moment - datetime.timedelta(minutes=5))
            .not_valid_after(moment + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    directory = pathlib.Path(directory)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "standin-ca.crt", directory / "standin.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path, cert_pem


class StandIn:
    """The stand-in as pytest or a rehearsal uses it: start, write a kubeconfig, seed, stop.

    >>> standin = StandIn(token="s3cret").start()      # doctest: +SKIP
    >>> standin.write_kubeconfig("kubeconfig", context="carbot-local", namespace="carbot")
    >>> standin.api.seed_deployment("carbot-app", "carbot", "carbot/app:1.0")
    """

    def __init__(self, host="127.0.0.1", port=0, token=None, tls=True, state_file=None, pod_ready_seconds=0.5,
                 fail_marker="fail", aggregated_discovery=True, tick_seconds=0.1, work_dir=None, verbose=False):
        self.api = KubeApi(state_file=state_file, pod_ready_seconds=pod_ready_seconds, fail_marker=fail_marker,
                           token=token, aggregated_discovery=aggregated_discovery)
        self.work_dir = pathlib.Path(work_dir or tempfile.mkdtemp(prefix="carbot-k8s-standin-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ca_pem = None
        context = None
        if tls:
            cert, key, self.ca_pem = make_certificate(self.work_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert), str(key))
            context.set_alpn_protocols(["http/1.1"])
            self.ca_file = cert
        handler = type("BoundHandler", (Handler,), {"api": self.api})
        self.httpd = _Server((host, port), handler, ssl_context=context)
        self.httpd.verbose = verbose
        self.tick_seconds = tick_seconds
        self._threads = []

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return "%s://%s:%d" % ("https" if self.ca_pem else "http", host, port)

    def start(self):
        """Serve and run the controllers in daemon threads; returns self (``.url`` is the base URL)."""
        serve = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                 name="k8s-standin-http", daemon=True)
        control = threading.Thread(target=self._control_loop, name="k8s-standin-controller", daemon=True)
        self._threads = [serve, control]
        for thread in self._threads:
            thread.start()
        return self

    def _control_loop(self):
        while not self.httpd.stopping.wait(self.tick_seconds):
            with self.api.store.lock:
                rv = self.api.store.rv
                self.api.controller.reconcile_all()
                if self.api.store.rv != rv:
                    self.api.store.save()

    def stop(self):
        self.httpd.stopping.set()
        with self.api.store.lock:
            self.api.store.changed.notify_all()
            self.api.store.save()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def kubeconfig(self, context="carbot-standin", namespace="default", token=None):
        """A kubeconfig (as a dict) whose ``context`` points at this server with ``namespace``."""
        cluster = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        user = {}
        token = token if token is not None else self.api.token
        if token:
            user["token"] = token
        return {"apiVersion": "v1", "kind": "Config", "preferences": {},
                "clusters": [{"name": context, "cluster": cluster}],
                "users": [{"name": context, "user": user}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                           "namespace": namespace}}],
                "current-context": context}

    def write_kubeconfig(self, path, context="carbot-standin", namespace="default", token=None):
        """Write the kubeconfig (JSON, which kubectl and the python client read as YAML) to ``path``, mode 0600."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.kubeconfig(context, namespace, token), indent=2) + "\n")
        os.chmod(path, 0o600)
        return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.standins.k8s_api", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (see --ready-file)")
    parser.add_argument("--token", default=os.environ.get("CARBOT_K8S_STANDIN_TOKEN"),
                        help="require this bearer token (default: $CARBOT_K8S_STANDIN_TOKEN; none: no auth)")
    parser.add_argument("--plain-http", action="store_true", help="serve HTTP, not HTTPS (kubectl then sends no token)")
    parser.add_argument("--state-file", help="keep the objects in this JSON file across restarts")
    parser.add_argument("--kubeconfig-out", help="write a kubeconfig for this server here")
    parser.add_argument("--context", default="carbot-standin")
    parser.add_argument("--namespace", action="append", default=[],
                        help="namespace to create (repeatable); the first is the kubeconfig's namespace")
    parser.add_argument("--seed-deployment", metavar="NAMESPACE/NAME=IMAGE",
                        help="create this Deployment already rolled out (revision 1) unless it exists")
    parser.add_argument("--seed-replicas", type=int, default=2)
    parser.add_argument("--pod-ready-seconds", type=float, default=0.5)
    parser.add_argument("--fail-marker", default="fail",
                        help="pods of an image whose tag contains this never become ready")
    parser.add_argument("--ready-file", help="written (JSON: url, pid, kubeconfig) once the server accepts requests")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    work_dir = pathlib.Path(args.state_file).resolve().parent if args.state_file else None
    standin = StandIn(host=args.host, port=args.port, token=args.token, tls=not args.plain_http,
                      state_file=args.state_file, pod_ready_seconds=args.pod_ready_seconds,
                      fail_marker=args.fail_marker, work_dir=work_dir, verbose=args.verbose)
    for namespace in args.namespace:
        standin.api.ensure_namespace(namespace)
    if args.seed_deployment:
        target, image = args.seed_deployment.split("=", 1)
        namespace, name = target.split("/", 1)
        if standin.api.store.get(DEPLOYMENTS, namespace, name) is None:
            standin.api.seed_deployment(name, namespace, image, replicas=args.seed_replicas)
    standin.start()
    if args.kubeconfig_out:
        standin.write_kubeconfig(args.kubeconfig_out, context=args.context,
                                 namespace=(args.namespace or ["default"])[0])
    if args.ready_file:
        pathlib.Path(args.ready_file).write_text(json.dumps({"url": standin.url, "pid": os.getpid(),
                                                             "kubeconfig": args.kubeconfig_out}) + "\n")
    print("k8s stand-in serving %s" % standin.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
