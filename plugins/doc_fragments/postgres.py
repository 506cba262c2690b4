# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The connection options every carbot.migration database module shares.
    DOCUMENTATION = r"""
options:
  login_host:
    description: Host of the CarBot PostgreSQL server (C(carbot_db_host)).
    type: str
    default: 127.0.0.1
  login_port:
    description: Port of the server (C(carbot_db_port)).
    type: int
    default: 5432
  login_db:
    description: Database to connect to (C(carbot_db_name)).
    type: str
    required: true
  login_user:
    description: Role to connect as (C(carbot_db_user)).
    type: str
    default: postgres
  login_password:
    description: Password of O(login_user) (C(carbot_db_password)); never logged.
    type: str
    default: ''
  ssl_mode:
    description: libpq sslmode (C(carbot_db_sslmode)).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
  lock_timeout_ms:
    description:
      - C(lock_timeout) set on every session, in milliseconds, so that a statement waiting for a lock
        gives up instead of queueing the application's writes behind it. Such statements are retried with backoff.
    type: int
    default: 3000
  statement_timeout_ms:
    description: C(statement_timeout) for every statement, in milliseconds; 0 disables it.
    type: int
    default: 0
requirements:
  - psycopg2
"""
