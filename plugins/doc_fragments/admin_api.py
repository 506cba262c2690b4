# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of every CarBot admin API module (module_utils/admin_api.py API_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  api_url:
    description: Base URL of the CarBot admin API (C(carbot_api_url)), without a trailing path.
    type: str
    required: true
  api_token:
    description: Bearer token of the admin API (C(carbot_api_token)).
    type: str
    required: true
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 10
  retries:
    description:
      - Retries after the first attempt, as Ansible's C(until)/C(retries) counts them (at most O(retries) + 1 attempts).
    type: int
    default: 5
  delay:
    description: Seconds between two attempts.
    type: float
    default: 2
notes:
  - On a local connection (every inventory of this collection) the action plugin of the same name sends the requests
    from the controller's process, without a module round trip; on any other connection the module runs on the host.
"""
