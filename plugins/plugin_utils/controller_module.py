# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An action plugin that runs its module's logic in the controller's process on a local connection (issue 14).

The admin API modules (maintenance_state, app_health) and deployment_rollout only send HTTP requests. On a local
connection (every inventory of this collection: the playbooks run on the controller and reach the APIs over the
network) the module would be packed, written to a temp dir and started as a new Python process to send them: ~0.3 s
per task on a quiet machine, more under load, inside the write freeze. Here the same function of module_utils runs
in-process with the same argument spec; on any other connection the module runs on the host as usual
(``_execute_module``), so a playbook that targets a remote host still sends the requests from there. Like
AsyncJobMixin._local in async_job.py.
A task with an ``environment`` (e.g. a proxy for the admin API) also runs the module: the controller's process does
not take the task's environment, the module's process does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.parameters import _list_no_log_values, remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.carbot.migration.plugins.module_utils.errors import CarbotError


class ControllerModuleAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC and RUN(params, check_mode) -> result dict (raises CarbotError)."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC = {}
    MUTUALLY_EXCLUSIVE = None

    @staticmethod
    def RUN(params, check_mode):  # noqa: N802 - a class constant that is a function
        raise NotImplementedError

    def _local(self):
        return getattr(self._connection, "transport", None) == "local" or \
            getattr(self._connection, "_load_name", "") in ("local", "ansible.builtin.local")

    def _environment(self):
        """The task's environment (its own, its block's and its play's ``environment``), templated."""
        environment = {}
        self._compute_environment_string(environment)
        return environment

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerModuleAction, self).run(tmp, task_vars)
        del tmp
        if not self._local() or self._environment():
            result.update(self._execute_module(task_vars=task_vars))
            return result
        _validation, params = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC,
                                                          mutually_exclusive=self.MUTUALLY_EXCLUSIVE)
        try:
            outcome = type(self).RUN(params, self._task.check_mode)
        except CarbotError as exc:
            outcome = dict(exc.fail_kwargs(), failed=True, changed=exc.extra.get("changed", False))
        # what AnsibleModule.exit_json/fail_json do: a no_log option's value (the API token) never leaves in the
        # result, whatever message quotes it
        result.update(remove_values(outcome, _list_no_log_values(self.ARGUMENT_SPEC, params)))
        return result
