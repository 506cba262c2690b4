#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: legacy_generate
short_description: Fill the legacy CarBot schema with deterministic synthetic data
description:
  - Applies the legacy schema (O(schema_sql), idempotent) and runs the set-based generator O(generator_sql) in
    O(schema), with the seed and scale given. The same seed and scale always give byte-identical data; the
    generator's comment block lists every kind of dirt it produces and how often.
  - The generator C(TRUNCATE)s the 25 legacy tables first. It is meant for the local rehearsal, Molecule and
    tests. Never point it at a database that holds real data.
  - What was generated is recorded in C(COMMENT ON TABLE <schema>.workshops) as
    C(carbot.migration legacy_generate {json}) with the seed, scale, the sha256 of the generator, the row counts
    and a content checksum.
  - Idempotent. When that record matches O(seed), O(scale) and the generator, nothing is done (C(changed=false)),
    even if an application has written rows since. When the tables are empty, or hold data of an earlier run
    with other parameters, the data is (re)generated. When they hold data without such a record (data of
    unknown origin), the module fails unless O(force=true).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
options:
  schema:
    description: The legacy schema (C(carbot_legacy_schema)). Created if missing when O(schema_sql) is given.
    type: str
    default: public
  scale:
    description:
      - Volume factor. V(1.0) is the upper production estimate (500 workshops, 100,000 customers,
        500,000 chat messages, 1,000,000 analytics events, ...); small floors keep tiny scales coherent.
    type: float
    default: 0.1
  shape:
    description:
      - The tenant shape, for benches (bench/README.md). Unset keys keep the default mix of O(scale); every other
        volume still follows O(scale). A different shape is different data (the module regenerates).
    type: dict
    suboptions:
      workshops:
        description: Number of workshops instead of 500 x O(scale).
        type: int
      customers_per_workshop:
        description: Customers per workshop on average (customers = workshops x this).
        type: int
      leads_per_workshop:
        description: Leads per workshop on average (leads = workshops x this).
        type: int
      messages_per_conversation:
        description: Average chat messages per conversation (default 8, conversations of 2 to 14 messages).
        type: int
  seed:
    description: Seed of every generated value (0 to 9e12).
    type: int
    default: 42
  schema_sql:
    description:
      - Path to C(sql/legacy/schema.sql), applied first with C(search_path) set to O(schema). It only uses
        C(CREATE TABLE IF NOT EXISTS), so applying it to an existing legacy schema changes nothing.
      - Omit it to use tables that already exist.
    type: path
  generator_sql:
    description: Path to C(sql/legacy/generate.sql).
    type: path
    required: true
  force:
    description: Regenerate even when the data already matches, or when the tables hold data of unknown origin.
    type: bool
    default: false
notes:
  - Supports check mode; it reports the action it would take (RV(action)) and the expected volumes.
  - At scale 1.0 generation takes about 20 seconds on two cores with C(fsync=off); run the task with C(async)
    for much larger scales.
seealso:
  - name: The legacy schema
    description: The legacy schema (sql/legacy/schema.sql, docs/mapping.md), the 25 tables and their dirt.
    link: https://git.carbot.example/ops/carbot.migration
"""

EXAMPLES = r"""
- name: Generate the local rehearsal data (scale 1.0 = production volumes)
  carbot.rehearsal.legacy_generate:
    login_host: "{{ carbot_db_host }}"
    login_port: "{{ carbot_db_port }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    ssl_mode: "{{ carbot_db_sslmode }}"
    schema: "{{ carbot_legacy_schema }}"
    scale: 1.0
    seed: 42
    schema_sql: "{{ playbook_dir }}/../../sql/legacy/schema.sql"
    generator_sql: "{{ playbook_dir }}/../../sql/legacy/generate.sql"
  register: legacy
  no_log: true

- name: Start again from scratch with another seed
  carbot.rehearsal.legacy_generate:
    login_db: carbot
    login_password: "{{ carbot_db_password }}"
    seed: 7
    generator_sql: sql/legacy/generate.sql
    force: true
"""

RETURN = r"""
action:
  description: V(none) (data already matches), V(generate) (tables were empty) or V(regenerate).
  returned: always
  type: str
  sample: generate
reason:
  description: Why the module took RV(action).
  returned: always
  type: str
  sample: "tables are empty"
counts:
  description: Rows per legacy table after the run (the expected volumes in check mode).
  returned: always
  type: dict
  sample: {"users": 1500, "workshops": 500, "customers": 100000}
elapsed_seconds:
  description: Seconds the generator ran (0 when nothing was generated).
  returned: always
  type: float
  sample: 19.4
seed:
  description: The seed used.
  returned: always
  type: int
  sample: 42
scale:
  description: The scale used.
  returned: always
  type: float
  sample: 1.0
checksum:
  description: md5 over the per-table content checksums (rows in primary-key order) after generation.
  returned: when data was generated, or already matched
  type: str
  sample: 0f343b0931126a20f133d67c2b018a3b
marker:
  description: The generation record found on (or written to) C(<schema>.workshops).
  returned: always
  type: dict
executed_queries:
  description: The statements run, in order (the generator by its path).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.carbot.migration.plugins.module_utils import db
from ansible_collections.carbot.migration.plugins.module_utils.db import (
    connect,
    postgres_argument_spec,
    sql,
)
from ansible_collections.carbot.rehearsal.plugins.module_utils import legacy_data


def read_text(module, path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        module.fail_json(msg="Cannot read the %s %s: %s" % (what, path, exc))


def apply_schema(conn, schema, schema_sql):
    """CREATE SCHEMA IF NOT EXISTS, then the idempotent legacy DDL with search_path set to it."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        cur.execute(schema_sql)
    conn.commit()


def decide(marker, counts, seed, scale, digest, force, shape=None):
    """(action, reason) from what the tables hold now."""
    total = sum(counts.values())
    if force:
        return ("regenerate" if total else "generate"), "force=true"
    if total == 0:
        return "generate", "tables are empty"
    if marker is None:
        return "fail", ("the legacy tables hold %d rows that this module did not generate (no record on %s.workshops);"
                        " refusing to TRUNCATE them. Use force=true only if they are synthetic." % (total, "<schema>"))
    same = (marker.get("seed") == seed and float(marker.get("scale", -1)) == float(scale)
            and marker.get("generator_sha256") == digest and (marker.get("shape") or {}) == (shape or {}))
    if same:
        return "none", "data generated with seed %s, scale %s by this generator is already there" % (seed, scale)
    return "regenerate", "the data was generated with seed %s, scale %s%s" % (
        marker.get("seed"), marker.get("scale"),
        "" if marker.get("generator_sha256") == digest else " by another version of the generator")


def main():
    argument_spec = postgres_argument_spec()
    argument_spec.update(
        schema=dict(type="str", default="public"),
        scale=dict(type="float", default=0.1),
        seed=dict(type="int", default=42),
        schema_sql=dict(type="path"),
        generator_sql=dict(type="path", required=True),
        force=dict(type="bool", default=False),
        shape=dict(type="dict", options=dict(
            workshops=dict(type="int"), customers_per_workshop=dict(type="int"),
            leads_per_workshop=dict(type="int"), messages_per_conversation=dict(type="int"))),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    db.require_psycopg2(module)

    params = module.params
    schema, seed, scale = params["schema"], params["seed"], params["scale"]
    if scale <= 0:
        module.fail_json(msg="scale must be greater than 0, got %s" % scale)
    if not 0 <= seed <= 9000000000000:
        module.fail_json(msg="seed must be between 0 and 9e12, got %s" % seed)
    try:
        shape = legacy_data.check_shape(params["shape"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    generator = read_text(module, params["generator_sql"], "generator")
    schema_text = read_text(module, params["schema_sql"], "legacy schema") if params["schema_sql"] else None
    digest = legacy_data.generator_digest(generator)
    result = dict(changed=False, action="none", reason="", seed=seed, scale=scale, elapsed_seconds=0.0,
                  counts={}, marker={}, executed_queries=[])

    try:
        conn = connect(params, application_name="carbot.migration legacy_generate")
    except Exception as exc:  # noqa: BLE001 - any connection problem is reported the same way
        module.fail_json(msg="Cannot connect to %s:%s/%s: %s" % (
            params["login_host"], params["login_port"], params["login_db"], exc))

    try:
        present = legacy_data.existing_tables(conn, schema)
        missing = [t for t in legacy_data.LEGACY_TABLES if t not in present]
        if missing and not schema_text:
            module.fail_json(msg="Schema %s lacks legacy tables %s and no schema_sql was given"
                             % (schema, ", ".join(missing)), **result)
        if missing:
            result["executed_queries"].append("CREATE SCHEMA IF NOT EXISTS %s; <schema_sql %s>"
                                              % (schema, params["schema_sql"]))
            if module.check_mode:
                counts = dict.fromkeys(legacy_data.LEGACY_TABLES, 0)
            else:
                apply_schema(conn, schema, schema_text)
        marker = None
        if not missing or not module.check_mode:
            counts = legacy_data.table_counts(conn, schema)
            marker = legacy_data.read_marker(conn, schema)
        conn.commit()

        action, reason = decide(marker, counts, seed, scale, digest, params["force"], shape)
        result.update(action=action, reason=reason, marker=marker or {})
        if action == "fail":
            module.fail_json(msg=reason.replace("<schema>", schema), counts=counts, **{
                k: v for k, v in result.items() if k != "counts"})
        if action == "none":
            result.update(counts=counts, checksum=marker.get("checksum"))
            module.exit_json(**result)

        result["changed"] = True
        result["executed_queries"].append("SET LOCAL search_path TO %s; SELECT set_config('carbot.seed', '%s'), "
                                          "set_config('carbot.scale', '%s'); <generator_sql %s>"
                                          % (schema, seed, scale, params["generator_sql"]))
        if module.check_mode:
            result["counts"] = legacy_data.expected_volumes(scale, shape)
            module.exit_json(**result)

        generated = legacy_data.generate(conn, generator, seed, scale, schema, shape)
        checksum = legacy_data.combined_checksum(legacy_data.content_checksums(conn, schema))
        marker = {"seed": seed, "scale": scale, "generator_sha256": digest,
                  "counts": generated["counts"], "checksum": checksum}
        if shape:  # the default mix keeps the record it always had
            marker["shape"] = shape
        legacy_data.write_marker(conn, schema, marker)
        result["executed_queries"].append("COMMENT ON TABLE %s.workshops IS '%s...'"
                                          % (schema, legacy_data.MARKER_PREFIX))
        result.update(counts=generated["counts"], elapsed_seconds=generated["elapsed_seconds"],
                      checksum=checksum, marker=marker)
        module.exit_json(**result)
    except Exception as exc:  # noqa: BLE001 - report database errors as a failed task, not a traceback
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001
            pass
        module.fail_json(msg="Generating legacy data in schema %s failed: %s" % (schema, exc), **result)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
