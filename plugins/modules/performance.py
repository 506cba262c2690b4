#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: performance
short_description: Compare the critical queries on the legacy schema and carbot_v2 and check the success criteria
description:
  - Runs the application's critical queries, each in its legacy and its carbot_v2 form, under
    C(EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)) for a deterministic sample of workshops (the busiest one always
    included), O(runs) times each after one warm-up run, and compares the median execution times.
  - V(dashboard) lead metrics of one workshop over the period (leads, new, converted, conversion rate, average
    score). V(appointments) one workshop's calendar over the period with customer name and licence plate.
  - Reports plan shapes (how each relation is scanned, sequential or through which index), buffers per run,
    rows per workshop on both sides, and the sizes of both schemas (C(pg_total_relation_size) sums; the
    migration's own C(migration_status)/C(migration_quarantine) are left out).
  - Checks the plan's three success criteria and reports each as met / not met with its figures, never as a
    pass it did not measure (then C(met) is null, "not measured"). Critical queries at least O(speedup_target)
    percent faster (every query), the database at least O(size_reduction_target) percent smaller, index usage
    of the critical queries on carbot_v2 above O(index_usage_target) percent, counted like
    C(pg_stat_user_tables) (C(idx_scan / (seq_scan + idx_scan))) from C(pg_stat_xact_user_tables) of the
    measuring transaction, so other sessions do not count.
  - The queries only read. EXPLAIN ANALYZE executes them; each measurement runs in a read-only transaction that
    is rolled back. With O(analyze=true) the tables the queries read are C(ANALYZE)d first (the only write, of
    planner statistics; skipped in check mode).
version_added: 1.0.0
author: CarBot operations (@carbot)
extends_documentation_fragment:
  - carbot.migration.postgres
  - carbot.migration.schemas.legacy
  - carbot.migration.schemas.target
options:
  queries:
    description: The critical queries to run.
    type: list
    elements: str
    choices: [dashboard, appointments]
    default: [dashboard, appointments]
  sample_size:
    description: How many workshops to run the queries for.
    type: int
    default: 10
  workshops:
    description: Run for exactly these workshop ids instead of a sample.
    type: list
    elements: str
    default: []
  runs:
    description: Measured runs per query, schema and workshop (after one warm-up run).
    type: int
    default: 5
  period_days:
    description: Length of the queried period, ending at O(until).
    type: int
    default: 90
  until:
    description: End of the queried period (ISO 8601); default just after the newest lead in carbot_v2.
    type: str
  analyze:
    description: C(ANALYZE) the queried tables of both schemas first, so that both are planned with fresh statistics.
    type: bool
    default: true
  speedup_target:
    description: Percent less median time the critical queries must achieve on carbot_v2.
    type: float
    default: 50
  size_reduction_target:
    description: Percent by which carbot_v2 must be smaller than the legacy schema.
    type: float
    default: 20
  index_usage_target:
    description: Percent of the critical queries' table scans on carbot_v2 that must use an index.
    type: float
    default: 90
  fail_on_unmet:
    description: Fail the task when a criterion is not met (or not measured).
    type: bool
    default: false
notes:
  - Supports check mode; the queries run (they only read), the C(ANALYZE) does not.
  - Speed figures depend on the machine and on caches; compare runs on the same server. Tests never assert them.
seealso:
  - module: carbot.migration.assess
  - module: carbot.migration.monitoring
"""

EXAMPLES = r"""
- name: Compare the critical queries and check the success criteria
  carbot.migration.performance:
    login_host: "{{ carbot_db_host }}"
    login_port: "{{ carbot_db_port }}"
    login_db: "{{ carbot_db_name }}"
    login_user: "{{ carbot_db_user }}"
    login_password: "{{ carbot_db_password }}"
    legacy_schema: "{{ carbot_legacy_schema }}"
    target_schema: "{{ carbot_target_schema }}"
    sample_size: 20
    runs: 7
  register: perf
  no_log: true
"""

RETURN = r"""
criteria:
  description:
    - The three success criteria, C({name, target, value, unit, met, detail}); C(met) is null when not measured.
  returned: always
  type: list
  elements: dict
  sample:
    - name: critical queries at least 50% faster
      target: ">= 50% less median time, every query"
      value: 64.1
      unit: percent
      met: true
      detail: "appointments: median 0.209 ms legacy, 0.075 ms carbot_v2 (64.1% less); dashboard: ..."
all_met:
  description: True only when every criterion was measured and met.
  returned: always
  type: bool
queries:
  description:
    - Per query, C(legacy) and C(target) measurements (C(median_ms), C(min_ms), C(max_ms), C(median_planning_ms),
      C(plans) with C(scans) per relation, C(buffers_per_run), C(table_scans), C(index_usage_percent)),
      C(rows) returned on each side, C(speedup_percent) and C(speedup_factor).
  returned: always
  type: dict
sizes:
  description: C(total_bytes), C(data_bytes), C(index_bytes) of each schema.
  returned: always
  type: dict
table_sizes:
  description: Per table sizes of each schema.
  returned: always
  type: dict
workshops:
  description: The sampled workshop ids.
  returned: always
  type: list
  elements: str
period:
  description: The queried period, C(since), C(until), C(days).
  returned: always
  type: dict
carbot_report:
  description: The criteria and a performance section for the migration report.
  returned: always
  type: dict
"""

from ansible_collections.carbot.migration.plugins.module_utils import common
from ansible_collections.carbot.migration.plugins.module_utils import performance


def main():
    spec = common.argument_spec(
        ("legacy_schema", "target_schema"),
        queries=dict(type="list", elements="str", choices=sorted(performance.QUERIES),
                     default=["dashboard", "appointments"]),
        sample_size=dict(type="int", default=10),
        workshops=dict(type="list", elements="str", default=[]),
        runs=dict(type="int", default=5),
        period_days=dict(type="int", default=90),
        until=dict(type="str"),
        analyze=dict(type="bool", default=True),
        speedup_target=dict(type="float", default=performance.SPEEDUP_TARGET),
        size_reduction_target=dict(type="float", default=performance.SIZE_REDUCTION_TARGET),
        index_usage_target=dict(type="float", default=performance.INDEX_USAGE_TARGET),
        fail_on_unmet=dict(type="bool", default=False),
    )
    module = common.database_module(spec, supports_check_mode=True)
    p = module.params
    if p["runs"] < 1 or p["sample_size"] < 1:
        module.fail_json(msg="runs and sample_size must be at least 1")

    def measure():
        with common.connection(p, "carbot.migration performance") as conn:
            return performance.run(
                conn, legacy_schema=p["legacy_schema"], target_schema=p["target_schema"], queries=p["queries"],
                sample_size=p["sample_size"], workshops=p["workshops"], runs=p["runs"], period_days=p["period_days"],
                until=p["until"], analyze=p["analyze"] and not module.check_mode, speedup_target=p["speedup_target"],
                size_target=p["size_reduction_target"], index_target=p["index_usage_target"])

    result = common.run(module, measure, "The performance test could not run")
    verdicts = ["%s: %s (%s%s)" % (c["name"], {True: "met", False: "NOT met", None: "not measured"}[c["met"]],
                                   c["value"], "%" if c["value"] is not None else "") for c in result["criteria"]]
    out = dict(changed=False, msg="; ".join(verdicts), carbot_report=performance.report_part(result), **result)
    if p["fail_on_unmet"] and not result["all_met"]:
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
