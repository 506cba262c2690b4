# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start a process that outlives the module that starts it (the local stand-ins of the rehearsal).

AnsibleModule.run_command waits for the command to end; a stand-in must keep running after the module
returned, in its own session, with its output in a log file. The module (plugins/modules/local_service.py)
watches it start (ready file, exit status) through the returned handle.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess


def spawn(argv, cwd=None, env=None, log_file=None):
    """Start ``argv`` in a new session, stdin from /dev/null, stdout and stderr to ``log_file`` (appended).

    Returns the ``subprocess.Popen`` handle; raises OSError when it cannot be started.
    """
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # pylint: disable=consider-using-with
    try:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,  # pylint: disable=consider-using-with
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not subprocess.DEVNULL:
            log.close()


def environment(extra):
    """This process's environment with ``extra`` (values as strings) on top."""
    return dict(os.environ, **{k: str(v) for k, v in (extra or {}).items()})
