#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: maintenance_state
short_description: Turn CarBot's maintenance mode on or off through the admin API and confirm it by reading it back
description:
  - With O(read_first), reads C(GET /admin/maintenance) first and changes nothing when the state is already the
    wanted one (that read is then the confirmation). Otherwise sends C(POST /admin/maintenance) with O(state) and
    O(user_message) until the API accepts it, then reads the state back until the API confirms it.
  - Each request is retried (O(retries), O(delay)) as the C(ansible.builtin.uri) tasks with C(until) it replaces were;
    the failure messages are theirs.
version_added: 1.1.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.admin_api
options:
  state:
    description: V(enabled) turns maintenance mode on, V(disabled) off.
    type: str
    choices: [enabled, disabled]
    default: enabled
  user_message:
    description: What the app shows its users while maintenance mode is on (the API's C(message)).
    type: str
    default: ""
  read_first:
    description:
      - Read the state first and send the change only when it differs (idempotent).
      - The cutover turns maintenance off without reading first (it knows it is on; each request is write-freeze time).
    type: bool
    default: true
notes:
  - Supports check mode. The read runs (with O(read_first)); the change is not sent, C(changed) says whether it
    would be.
seealso:
  - module: carbot.migration.app_health
"""

EXAMPLES = r"""
- name: Turn maintenance mode on and confirm it
  carbot.migration.maintenance_state:
    api_url: "{{ carbot_api_url }}"
    api_token: "{{ carbot_api_token }}"
    state: enabled
    user_message: CarBot is being updated and will be back in a few minutes.

- name: Turn maintenance mode off (known to be on) and confirm it
  carbot.migration.maintenance_state:
    api_url: "{{ carbot_api_url }}"
    api_token: "{{ carbot_api_token }}"
    state: disabled
    read_first: false
"""

RETURN = r"""
state:
  description: The wanted state (O(state)).
  returned: always
  type: str
previous:
  description: Whether maintenance mode was on before (the first read), C(null) without O(read_first).
  returned: always
  type: bool
enabled:
  description: Whether maintenance mode is on, as the admin API confirmed it.
  returned: success, not in check mode
  type: bool
message:
  description: The maintenance message the admin API returned.
  returned: success, not in check mode
  type: str
since:
  description: Since when the state holds, as the admin API returned it.
  returned: success, not in check mode
  type: str
attempts:
  description: Attempts per request (C(read), C(change), C(confirm)).
  returned: always
  type: dict
  sample: {change: 1, confirm: 1}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.migration.plugins.module_utils.admin_api import (
    MAINTENANCE_ARGUMENT_SPEC, AdminApiError, maintenance)


def main():
    # The cutover runs the action plugin of the same name on its local connection (no module round trip);
    # this module runs when the task targets a host over another connection.
    module = AnsibleModule(argument_spec=MAINTENANCE_ARGUMENT_SPEC, supports_check_mode=True)
    try:
        module.exit_json(**maintenance(module.params, module.check_mode))
    except AdminApiError as exc:
        module.fail_json(**exc.fail_kwargs())


if __name__ == "__main__":
    main()
