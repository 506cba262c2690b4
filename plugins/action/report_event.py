# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for carbot.migration.report_event: the event is stamped on the controller.

The module only returns the time and changes nothing on the host, so shipping it to the host costs a
module round trip (~0.3 s) per event for nothing. The cutover records seven events inside the write
freeze; here each one costs a few milliseconds. The module (plugins/modules/report_event.py) keeps the
documentation; both take their arguments and build their result with module_utils/report.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible_collections.carbot.migration.plugins.module_utils.report import EVENT_ARGUMENT_SPEC, event_part


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=EVENT_ARGUMENT_SPEC)
        now = time.time()
        result.update(changed=False, at=now,
                      carbot_report=event_part(args["label"], args["ok"], args["timeline"], now))
        return result
