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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            label=dict(type="str", required=True),
            ok=dict(type="bool", default=True),
            timeline=dict(type="str", default="freeze", choices=["freeze", "notes"]),
        ),
        supports_check_mode=True,
    )
    now = time.time()
    label = module.params["label"]
    if module.params["timeline"] == "freeze":
        part = {"freeze": {"events": [{"at": now, "label": label, "ok": module.params["ok"]}]}}
    else:
        part = {"notes": ["%s: %s" % (time.strftime("%H:%M:%S", time.gmtime(now)), label)]}
    module.exit_json(changed=False, at=now, carbot_report=part)


if __name__ == "__main__":
    main()
