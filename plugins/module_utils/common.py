# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every carbot.migration database module opens, connects and fails (issue 16).

A module's ``main()`` is::

    module = common.database_module(common.argument_spec(("target_schema", ...), option=dict(...)),
                                    supports_check_mode=True)
    common.run(module, lambda: body(module), "What could not run", out=partial_result)

and its body opens its connection with ``with common.connection(module, "carbot.migration <name>") as conn``.
``run`` is the one place where an error becomes ``module.fail_json``, as kubernetes.core turns its
exception hierarchy into ``fail_json`` in one place: an ``errors.CarbotError`` gives its own message (and
the fields it carries), any other error the module's ``failure`` text, the error's class and
``db.describe_error`` (the cause, then the fix when it is known).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.carbot.migration.plugins.module_utils import db
from ansible_collections.carbot.migration.plugins.module_utils.errors import CarbotError, ConnectError
from ansible_collections.carbot.migration.plugins.module_utils.schemas import schema_argument_spec


def argument_spec(schema_options=(), **options):
    """The connection options (doc fragment carbot.migration.postgres), the schema options named in
    ``schema_options`` (doc fragment carbot.migration.schemas) and the module's own ``options``."""
    spec = db.postgres_argument_spec()
    if schema_options:  # schema_argument_spec() without names gives all three
        spec.update(schema_argument_spec(*schema_options))
    spec.update(options)
    return spec


def database_module(spec, **kwargs):
    """``AnsibleModule(argument_spec=spec, **kwargs)``; fails with ``missing_required_lib`` without psycopg2."""
    module = AnsibleModule(argument_spec=spec, **kwargs)
    db.require_psycopg2(module)
    return module


def connect(params, application_name=None, **kwargs):
    """``db.connect``, or ConnectError naming the database and the role, the cause and the fix."""
    try:
        return db.connect(params, application_name=application_name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any connection error is reported to the operator
        raise ConnectError("Could not connect to %s as %s: %s" % (
            params["login_db"], params["login_user"], db.describe_error(exc)))


@contextlib.contextmanager
def connection(params, application_name=None, **kwargs):
    """A connection (see :func:`connect`; ``params``: module.params or a dict like it) closed after the block."""
    conn = connect(params, application_name=application_name, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def run(module, body, failure, out=None, on_error=None, prefix_known=False):
    """``body()``, with every error turned into ``module.fail_json`` here.

    ``failure``: what could not run, the start of the message of an unexpected error. ``out``: the result
    so far (a dict the body may fill), returned with the failure so the documented RETURN fields are
    there; or a function of the failure's cause that returns them. ``on_error()``: called first (e.g. to
    mark a progress file failed). ``prefix_known``: a CarbotError's message starts with ``failure`` too
    (where the module's messages always did).
    """
    try:
        return body()
    except CarbotError as exc:
        kwargs = exc.fail_kwargs()
        if prefix_known:
            kwargs["msg"] = "%s: %s" % (failure, kwargs["msg"])
        cause = exc.msg
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error becomes the module's message
        kwargs = {"msg": "%s: %s: %s" % (failure, type(exc).__name__, db.describe_error(exc))}
        cause = db.describe_error(exc)
    if on_error:
        on_error()
    fields = out(cause) if callable(out) else dict(out or {})
    fields.update(kwargs)
    module.fail_json(**fields)


def run_connected(module, func, failure, application_name=None, **kwargs):
    """:func:`run` of ``func(conn)`` on a connection (module.params) opened for it and closed after it."""
    def body():
        with connection(module.params, application_name) as conn:
            return func(conn)
    return run(module, body, failure, **kwargs)
