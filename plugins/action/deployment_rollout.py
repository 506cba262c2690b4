# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for carbot.migration.deployment_rollout: on a local connection the apply or undo and the watch run in
the controller's process, without a module round trip (plugin_utils/controller_module.py); the module
(plugins/modules/deployment_rollout.py) keeps the documentation and runs on any other connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.carbot.migration.plugins.module_utils.rollout import MUTUALLY_EXCLUSIVE, argument_spec, run
from ansible_collections.carbot.migration.plugins.plugin_utils.controller_module import ControllerModuleAction


class ActionModule(ControllerModuleAction):
    ARGUMENT_SPEC = argument_spec()
    MUTUALLY_EXCLUSIVE = MUTUALLY_EXCLUSIVE
    RUN = staticmethod(run)
