#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: local_postgres_cluster
short_description: Start, stop or remove a throwaway PostgreSQL cluster in a directory of its own
description:
  - Creates a PostgreSQL cluster with C(initdb) in O(base_dir) and starts it on a loopback port, for the local
    rehearsal, Molecule scenarios and tests. Never use it for a real database.
  - When run as root, the server runs as the C(postgres) OS user (PostgreSQL refuses to run as root) and the
    parents of O(base_dir) are opened for traversal.
  - Host connections use C(scram-sha-256) with O(password) for the superuser; the unix socket lives in
    C(<base_dir>/socket).
version_added: 1.0.0
author: CarBot operations (@carbot)
options:
  base_dir:
    description: Directory that holds the cluster (C(data/), C(socket/), C(server.log), C(cluster.json)).
    type: path
    required: true
  state:
    description:
      - V(started) initialises the cluster if needed and starts it; V(stopped) stops it;
        V(absent) stops it and removes O(base_dir).
    type: str
    choices: [started, stopped, absent]
    default: started
  port:
    description:
      - TCP port on 127.0.0.1. V(0) picks a free port the first time and keeps it on later starts.
      - A port that another process uses is an error, not a silent change.
    type: int
    default: 0
  password:
    description: Password of the superuser, set at C(initdb). Required to initialise.
    type: str
  superuser:
    description: Name of the superuser role.
    type: str
    default: postgres
  bindir:
    description: Directory of C(initdb)/C(pg_ctl); default the newest C(/usr/lib/postgresql/*/bin).
    type: path
  os_user:
    description: OS user that runs the server when the module runs as root.
    type: str
    default: postgres
  durable:
    description: Keep C(fsync) and C(full_page_writes) on. A throwaway cluster turns them off for speed.
    type: bool
    default: false
  settings:
    description: Extra C(postgresql.conf) settings (values written as given).
    type: dict
    default: {}
notes:
  - Supports check mode; it reports what it would do.
seealso:
  - name: initdb
    description: PostgreSQL's C(initdb).
    link: https://www.postgresql.org/docs/15/app-initdb.html
"""

EXAMPLES = r"""
- name: Start a throwaway cluster on a free port
  carbot.rehearsal.local_postgres_cluster:
    base_dir: /tmp/carbot-rehearsal/pg
    password: "{{ local_postgres_password }}"
  register: cluster
  no_log: true

- name: Remove it again
  carbot.rehearsal.local_postgres_cluster:
    base_dir: /tmp/carbot-rehearsal/pg
    state: absent
"""

RETURN = r"""
host:
  description: Address the server listens on.
  returned: always
  type: str
  sample: 127.0.0.1
port:
  description: TCP port of the server (null before the first start).
  returned: always
  type: int
  sample: 55432
data_dir:
  description: PGDATA of the cluster.
  returned: always
  type: str
socket_dir:
  description: Unix socket directory.
  returned: always
  type: str
log_file:
  description: Server log.
  returned: always
  type: str
version:
  description: PostgreSQL version of the binaries used.
  returned: always
  type: str
  sample: "15.18"
running:
  description: Whether the server runs after the module.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import ClusterError, LocalCluster


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_dir=dict(type="path", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "absent"]),
            port=dict(type="int", default=0),
            password=dict(type="str", no_log=True),
            superuser=dict(type="str", default="postgres"),
            bindir=dict(type="path"),
            os_user=dict(type="str", default="postgres"),
            durable=dict(type="bool", default=False),
            settings=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    cluster = LocalCluster(p["base_dir"], bindir=p["bindir"], os_user=p["os_user"], superuser=p["superuser"])
    state = p["state"]
    try:
        if module.check_mode:
            running = cluster.running()
            would = {
                "started": not running,
                "stopped": running,
                "absent": running or cluster.initialized,
            }[state]
            facts = cluster.facts()
            module.exit_json(changed=would, **facts)
        if state == "started":
            changed = cluster.ensure_started(p["password"], port=p["port"], settings=p["settings"],
                                             durable=p["durable"])
        elif state == "stopped":
            changed = cluster.ensure_stopped()
        else:
            changed = cluster.ensure_absent()
        module.exit_json(changed=changed, **cluster.facts())
    except ClusterError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
