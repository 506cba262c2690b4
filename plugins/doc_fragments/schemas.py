# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The schema options of carbot.migration's modules, built by module_utils/schemas.schema_argument_spec() with the
    # defaults LEGACY_SCHEMA, TARGET_SCHEMA and MAPPING_SCHEMA defined there. A module that takes all three says
    # "carbot.migration.schemas"; one that takes some of them names those: "carbot.migration.schemas.legacy",
    # ".target", ".mapping". A module may add its own description of an option where its use of the schema needs
    # saying (only the description; type and default stay here).
    #
    # Each option appears twice in this file (in DOCUMENTATION and in its own fragment) because ansible-test's
    # yamllint reads doc fragments as plain string literals (no concatenation); tests/unit/test_schema_options.py
    # checks that the copies and the helper's defaults agree.
    DOCUMENTATION = r"""
options:
  legacy_schema:
    description: Schema of the 25 legacy tables (C(carbot_legacy_schema)).
    type: str
    default: public
  target_schema:
    description: Schema of the enterprise tables (C(carbot_target_schema)).
    type: str
    default: carbot_v2
  mapping_schema:
    description: Schema of the mapping's rule functions and projection views (C(carbot_mapping_schema)).
    type: str
    default: carbot_migration
"""

    LEGACY = r"""
options:
  legacy_schema:
    description: Schema of the 25 legacy tables (C(carbot_legacy_schema)).
    type: str
    default: public
"""

    TARGET = r"""
options:
  target_schema:
    description: Schema of the enterprise tables (C(carbot_target_schema)).
    type: str
    default: carbot_v2
"""

    MAPPING = r"""
options:
  mapping_schema:
    description: Schema of the mapping's rule functions and projection views (C(carbot_mapping_schema)).
    type: str
    default: carbot_migration
"""
