# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception hierarchy of carbot.migration (issue 16).

module_utils raise these; a module's body runs under ``common.run`` (module_utils/common.py), which
turns them into ``module.fail_json`` in one place, as kubernetes.core does with its ``CoreException``.
``fail_kwargs()`` is what that ``fail_json`` gets: the message, plus whatever the raiser attached
(``extra``: e.g. ``results``, ``attempts``) so a module keeps its documented RETURN on failure.
Pure: no database, no psycopg2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class CarbotError(Exception):
    """Base class: an operator-facing reason why a step failed; ``str(exc)`` is the message."""

    def __init__(self, msg, **extra):
        super(CarbotError, self).__init__(msg)
        self.msg = msg
        self.extra = extra

    def fail_kwargs(self):
        """The keyword arguments of ``module.fail_json``."""
        out = dict(self.extra)
        out["msg"] = self.msg
        return out


class ConnectError(CarbotError):
    """A database could not be reached (wrong credentials, host, pg_hba, database down)."""


class PreconditionError(CarbotError):
    """What the step needs is not there or not in the expected state (a missing table or view, an
    unknown table name, a schema claimed by another sync, a state the step cannot start from)."""


class TableError(PreconditionError):
    """The mapping declaration or the catalog does not allow the step (module_utils/tables.py); the
    copy engine's ``CopyError`` is this class."""
