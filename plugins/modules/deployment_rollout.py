#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deployment_rollout
short_description: Apply or undo a Deployment and wait for its rollout with a watch, as kubectl rollout status does
description:
  - With O(definition), creates the Deployment, or strategic-merge-patches the live one with it (what
    C(kubernetes.core.k8s) with O(kubernetes.core.k8s#module:state=present) does to an existing Deployment), in the
    same round trip as the wait.
  - With O(undo), rolls the Deployment back to its previous revision as C(kubectl rollout undo) does (the ReplicaSet
    of the revision before the newest; its pod template and annotations patched back in), in the same round trip as
    the wait. Nothing changes when the live template already is that revision's.
  - With neither, only waits (e.g. after C(kubernetes.core.k8s_rollback)).
  - With O(wait), B(watches) the Deployment (a Kubernetes WATCH from the resourceVersion the write returned, or
    from one read) until its rollout is complete by C(kubectl rollout status)'s rule - the controller has observed
    the latest spec (C(status.observedGeneration >= metadata.generation)), every replica is updated
    (C(updatedReplicas >= spec.replicas)), no old replica is left (C(status.replicas <= updatedReplicas)) and every
    updated replica is available.
  - The wait ends with the change that completes the rollout, not at the next poll; C(kubernetes.core.k8s) with
    C(wait) looks, then sleeps C(wait_sleep) (at least 1 s) between looks. Inside the cutover's write freeze, that
    second is freeze time.
  - Fails at once, with the controller's message, when the C(Progressing) condition says
    C(ProgressDeadlineExceeded) (the Deployment's C(progressDeadlineSeconds) passed without progress), when the
    Deployment is deleted while it is watched, and when O(wait_timeout) passes first.
  - A watch that the API server ends (its timeout, a restart, a resourceVersion too old) is followed by a fresh
    read and a new watch until O(wait_timeout).
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.k8s_auth
options:
  name:
    description: Name of the Deployment (the name of O(definition) is set to it).
    type: str
    required: true
  namespace:
    description: Namespace of the Deployment (the namespace of O(definition) is set to it).
    type: str
    required: true
  definition:
    description:
      - The Deployment to apply (C(apps/v1)), as C(kubernetes.core.k8s) takes it. Omitted, nothing is written.
    type: dict
  undo:
    description:
      - Roll back to the previous revision (C(kubectl rollout undo)). Fails when the Deployment is paused or has no
        earlier revision. Mutually exclusive with O(definition).
    type: bool
    default: false
  wait:
    description: Wait for the rollout to complete.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the rollout to complete.
    type: int
    default: 120
notes:
  - Supports check mode. The write is the API server's dry run (C(dryRun=All)), so C(changed) says whether the
    Deployment would change; nothing is waited for. Without O(definition) the Deployment is read once and its
    state returned (RV(rolled_out), RV(message)), without failing on an incomplete rollout.
  - Talks to the API with the kubernetes python client through kubernetes.core's client (collection
    C(kubernetes.core), a dependency of this collection), so it finds its cluster exactly as the C(kubernetes.core)
    tasks beside it do. It uses the generated C(AppsV1Api), so it needs no API discovery.
seealso:
  - module: kubernetes.core.k8s
  - module: kubernetes.core.k8s_rollback
  - name: kubectl rollout status
    description: The rule this module follows.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_status/
"""

EXAMPLES = r"""
- name: Roll out the new image and wait until every replica runs it
  carbot.migration.deployment_rollout:
    name: carbot-app
    namespace: carbot
    definition: "{{ lookup('ansible.builtin.template', 'deployment.yml.j2') | from_yaml }}"
    wait_timeout: 180
  register: rollout

- name: Show the revision the rollout ended with
  ansible.builtin.debug:
    msg: "revision {{ rollout.revision }}, image {{ rollout.image }} ({{ rollout.elapsed }} s)"

- name: Roll back to the previous revision and wait until it is available
  carbot.migration.deployment_rollout:
    name: carbot-app
    namespace: carbot
    undo: true
    kubeconfig: /etc/carbot/kubeconfig
    context: production

- name: Only wait (e.g. after kubernetes.core.k8s_rollback)
  carbot.migration.deployment_rollout:
    name: carbot-app
    namespace: carbot
"""

RETURN = r"""
result:
  description: The Deployment as last seen (the object that completed the rollout), as the API returns it.
  returned: when the Deployment could be read
  type: dict
operation:
  description:
    - What the write did - V(created), V(patched), V(rolled back), V(unchanged) - or V(none) without O(definition)
      and O(undo).
  returned: always
  type: str
rolled_back_to:
  description: With O(undo), the revision whose template was restored (it becomes the next revision), else C(null).
  returned: always
  type: str
rolled_out:
  description: Whether the rollout is complete (always true on success when it waited).
  returned: always
  type: bool
message:
  description: The last status line, as C(kubectl rollout status) prints it.
  returned: always
  type: str
  sample: deployment "carbot-app" successfully rolled out
messages:
  description: Each distinct status line seen, in order (the progress of the rollout).
  returned: always
  type: list
  elements: str
revision:
  description: The Deployment's revision (C(deployment.kubernetes.io/revision)) as last seen, V(none) without one.
  returned: when the Deployment could be read
  type: str
  sample: "3"
image:
  description: The image of the Deployment's first container as last seen.
  returned: when the Deployment could be read
  type: str
elapsed:
  description: Seconds the module took (write, read and watch).
  returned: always
  type: float
events:
  description: Watch events received.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.migration.plugins.module_utils.rollout import (
    MUTUALLY_EXCLUSIVE, RolloutError, argument_spec, run)


def main():
    # The cutover runs the action plugin of the same name on its local connection (no module round trip);
    # this module runs when the task targets a host over another connection (module_utils/rollout.py does the work).
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=MUTUALLY_EXCLUSIVE)
    try:
        module.exit_json(**run(module.params, module.check_mode))
    except RolloutError as exc:
        module.fail_json(**exc.fail_kwargs())


if __name__ == "__main__":
    main()
