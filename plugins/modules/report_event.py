#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: report_event
short_description: Record a timestamped event in the migration report
description:
  - Returns the current time as an event of the write-freeze timeline (or of the run), which the
    C(carbot.migration.migration_report) callback draws in the report. Changes nothing.
version_added: 1.0.0
author: CarBot operations (@carbot)
options:
  label:
    description: What happened, e.g. C(maintenance on), C(search_path switched), C(maintenance off).
    type: str
    required: true
  ok:
    description: Whether the step that ends here went well (drawn green or red).
    type: bool
    default: true
  timeline:
    description: V(freeze) adds the event to the write-freeze timeline; V(notes) adds a note.
    type: str
    choices: [freeze, notes]
    default: freeze
notes:
  - Supports check mode (it changes nothing in either mode).
"""

EXAMPLES = r"""
- name: Record that maintenance mode is on
  carbot.migration.report_event:
    label: maintenance on
"""

RETURN = r"""
at:
  description: The event's time, seconds since the epoch.
  returned: always
  type: float
carbot_report:
  description: The event, in the shape the migration report merges.
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.migration.plugins.module_utils.report import EVENT_ARGUMENT_SPEC, event_part


def main():
    # The cutover runs the action plugin of the same name (plugins/action/report_event.py), which stamps the
    # event on the controller without this round trip; this module is what runs when the action is bypassed.
    module = AnsibleModule(argument_spec=EVENT_ARGUMENT_SPEC, supports_check_mode=True)
    now = time.time()
    p = module.params
    module.exit_json(changed=False, at=now, carbot_report=event_part(p["label"], p["ok"], p["timeline"], now))


if __name__ == "__main__":
    main()
