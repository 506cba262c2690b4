# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for carbot.migration.maintenance_state: on a local connection the requests are sent from the
controller's process, without a module round trip (plugin_utils/controller_module.py); the module
(plugins/modules/maintenance_state.py) keeps the documentation and runs on any other connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils.admin_api import MAINTENANCE_ARGUMENT_SPEC, maintenance
from ansible_collections.carbot.migration.plugins.plugin_utils.controller_module import ControllerModuleAction


class ActionModule(ControllerModuleAction):
    ARGUMENT_SPEC = MAINTENANCE_ARGUMENT_SPEC
    RUN = staticmethod(maintenance)
