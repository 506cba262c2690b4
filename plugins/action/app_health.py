# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for carbot.migration.app_health: on a local connection the health requests are sent from the
controller's process, without a module round trip (plugin_utils/controller_module.py); the module
(plugins/modules/app_health.py) keeps the documentation and runs on any other connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils.admin_api import HEALTH_ARGUMENT_SPEC, health
from ansible_collections.carbot.migration.plugins.plugin_utils.controller_module import ControllerModuleAction


def _health(params, check_mode):
    del check_mode  # read-only: the same requests in check mode
    return health(params)


class ActionModule(ControllerModuleAction):
    ARGUMENT_SPEC = HEALTH_ARGUMENT_SPEC
    RUN = staticmethod(_health)
