#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_health
short_description: Check the CarBot app's health through its admin API (schema resolved, can write, tables migrated)
description:
  - Asks C(GET /health/database) (with C(?app_version=) when O(app_version) is set) until the app answers 200, C(ok),
    resolves its tables in O(expected_schema) and C(can_write); fails with what it answered last otherwise.
  - With O(migrations), then asks C(GET /health/migrations) until it answers 200 and C(ok) (every table migrated as
    the app sees it).
  - Each request is retried (O(retries), O(delay)) as the C(ansible.builtin.uri) tasks with C(until) it replaces were;
    the failure messages are theirs. Read-only.
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.admin_api
options:
  expected_schema:
    description:
      - The schema where the app must resolve its tables (carbot_v2 after the switch, the legacy schema after a
        rollback).
    type: str
    required: true
  app_version:
    description: V(new) asks as the new app version's role (online cutover); empty asks as the live app.
    type: str
    default: ""
  migrations:
    description: Also require C(/health/migrations) to report every table migrated.
    type: bool
    default: true
notes:
  - Supports check mode (it changes nothing; the requests are sent in check mode too).
seealso:
  - module: carbot.migration.maintenance_state
"""

EXAMPLES = r"""
- name: The app resolves carbot_v2, can write, and sees every table migrated
  carbot.migration.app_health:
    api_url: "{{ carbot_api_url }}"
    api_token: "{{ carbot_api_token }}"
    expected_schema: carbot_v2
    retries: 10
    delay: 3

- name: After a rollback, the app resolves the legacy schema again
  carbot.migration.app_health:
    api_url: "{{ carbot_api_url }}"
    api_token: "{{ carbot_api_token }}"
    expected_schema: public
    migrations: false
"""

RETURN = r"""
database:
  description:
    - What C(/health/database) answered last (C(status), C(ok), C(resolved_schema), C(can_write), C(latency_ms), ...).
  returned: always
  type: dict
migrations:
  description: What C(/health/migrations) answered last (C(status), C(ok), C(reason), C(tables), ...).
  returned: when migrations is true and the database check passed
  type: dict
attempts:
  description: Attempts per request (C(database), C(migrations)).
  returned: always
  type: dict
msg:
  description: What was confirmed, e.g. C(The app resolves its tables in carbot_v2 and can write (3 ms).).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.migration.plugins.module_utils.admin_api import (
    HEALTH_ARGUMENT_SPEC, AdminApiError, health)


def main():
    # The cutover runs the action plugin of the same name on its local connection (no module round trip);
    # this module runs when the task targets a host over another connection.
    module = AnsibleModule(argument_spec=HEALTH_ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**health(module.params))
    except AdminApiError as exc:
        module.fail_json(**exc.fail_kwargs())


if __name__ == "__main__":
    main()
