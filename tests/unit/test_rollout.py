"""kubectl rollout status's rule (plugins/module_utils/rollout.py, carbot.migration.deployment_rollout): one case per
state a rollout passes through, with kubectl's line for each."""

import pytest
from ansible_collections.carbot.migration.plugins.module_utils.rollout import (
    desired,
    previous_replicaset,
    rollout_state,
    summary,
    template_without_hash,
    undo_patch,
)


def deployment(generation=2, observed=2, replicas=2, updated=2, current=2, available=2, progressing=None):
    status = {"observedGeneration": observed, "updatedReplicas": updated, "replicas": current,
              "availableReplicas": available}
    if progressing:
        status["conditions"] = [{"type": "Available", "status": "True"},
                                {"type": "Progressing", "status": "False" if progressing == "ProgressDeadlineExceeded"
                                 else "True", "reason": progressing, "message": 'ReplicaSet "x" has timed out'}]
    return {"metadata": {"name": "app", "generation": generation,
                         "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}},
            "status": status}


@pytest.mark.parametrize("kwargs, done, failed, line", [
    (dict(), True, False, 'deployment "app" successfully rolled out'),
    (dict(progressing="NewReplicaSetAvailable"), True, False, 'deployment "app" successfully rolled out'),
    (dict(generation=3), False, False, "Waiting for deployment spec update to be observed..."),
    (dict(updated=1, current=3, available=2), False, False,
     'Waiting for deployment "app" rollout to finish: 1 out of 2 new replicas have been updated...'),
    (dict(current=3, available=3), False, False,
     'Waiting for deployment "app" rollout to finish: 1 old replicas are pending termination...'),
    (dict(available=1), False, False,
     'Waiting for deployment "app" rollout to finish: 1 of 2 updated replicas are available...'),
    (dict(updated=1, current=3, progressing="ProgressDeadlineExceeded"), False, True,
     'deployment "app" exceeded its progress deadline'),
    # a spec not yet observed is not judged by its old conditions
    (dict(generation=3, progressing="ProgressDeadlineExceeded"), False, False,
     "Waiting for deployment spec update to be observed..."),
    (dict(replicas=0, updated=0, current=0, available=0), True, False, 'deployment "app" successfully rolled out'),
])
def test_rollout_state_is_kubectls_rule(kwargs, done, failed, line):
    assert rollout_state(deployment(**kwargs)) == (done, failed, line)


def test_an_empty_status_is_not_rolled_out():
    obj = {"metadata": {"name": "app", "generation": 1}, "spec": {"replicas": 2}}
    assert rollout_state(obj)[:2] == (False, False)


def test_summary_and_what_a_write_changes():
    obj = deployment()
    assert summary(obj) == {"revision": "3", "image": "img:2"}
    assert summary({}) == {"revision": "none", "image": "none"}
    later = deployment(observed=1, available=0)
    later["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    later["metadata"]["resourceVersion"] = "99"
    assert desired(obj) == desired(later)  # status, resourceVersion and the revision are not the write's
    later["spec"]["template"]["spec"]["containers"][0]["image"] = "img:3"
    assert desired(obj) != desired(later)


def replicaset(revision, image, uid="u1", controller=True):
    return {"metadata": {"name": "app-%s" % revision, "annotations": {"deployment.kubernetes.io/revision": revision,
                                                                      "kubernetes.io/change-cause": "to " + image},
                         "ownerReferences": [{"uid": uid, "controller": controller}]},
            "spec": {"template": {"metadata": {"labels": {"app": "x", "pod-template-hash": "h" + revision}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_undo_picks_the_revision_before_the_newest_of_the_deployments_own_replicasets():
    live = {"metadata": {"uid": "u1", "annotations": {"deployment.kubernetes.io/revision": "10",
                                                      "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                      "team": "ops"}},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    sets = [replicaset("9", "img:9"), replicaset("10", "img:10"), replicaset("2", "img:2"),
            replicaset("11", "img:other", uid="u2"), replicaset("12", "img:adopted", controller=False)]
    previous = previous_replicaset(live, sets)
    assert previous["metadata"]["name"] == "app-9"  # 9 < 10 (numeric, not "10" < "9"); other owners ignored
    template, annotations = undo_patch(live, previous)
    assert template == {"op": "replace", "path": "/spec/template",
                        "value": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c",
                                                                                                 "image": "img:9"}]}}}
    # kubectl: the Deployment keeps its revision and last-applied annotations, takes the ReplicaSet's others
    assert annotations["value"] == {"deployment.kubernetes.io/revision": "10",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                    "kubernetes.io/change-cause": "to img:9"}
    assert previous_replicaset(live, [replicaset("10", "img:10")]) is None
    assert template_without_hash(previous["spec"]["template"]) == template["value"]
    assert previous["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "h9"  # not modified
