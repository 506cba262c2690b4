# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three schemas of the migration, named once (docs/architecture.md, "Schemas").

Every module that takes ``legacy_schema``, ``target_schema`` or ``mapping_schema`` builds those options with
``schema_argument_spec`` and documents them with the doc fragment ``carbot.migration.schemas``
(plugins/doc_fragments/schemas.py); every Python default that means one of these schemas is one of the constants
below. tests/unit/test_schema_options.py fails on a hand-written copy. Pure: no database, no psycopg2.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

LEGACY_SCHEMA = "public"
TARGET_SCHEMA = "carbot_v2"
MAPPING_SCHEMA = "carbot_migration"

DEFAULTS = {
    "legacy_schema": LEGACY_SCHEMA,
    "target_schema": TARGET_SCHEMA,
    "mapping_schema": MAPPING_SCHEMA,
}
# Option order in a module's spec when it asks for all of them (as the modules always listed them).
ALL = ("target_schema", "mapping_schema", "legacy_schema")


def schema_argument_spec(*names):
    """Argument-spec entries for the schema options ``names`` (default: all three), each a fresh dict.

    >>> schema_argument_spec("legacy_schema")
    {'legacy_schema': {'type': 'str', 'default': 'public'}}
    """
    unknown = [n for n in names if n not in DEFAULTS]
    if unknown:
        raise ValueError("no such schema option: %s (known: %s)" % (", ".join(unknown), ", ".join(ALL)))
    return dict((name, dict(type="str", default=DEFAULTS[name])) for name in (names or ALL))
