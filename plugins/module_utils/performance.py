# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Performance tests: the application's critical queries on the legacy schema and on carbot_v2.

Two queries, each in its legacy and its carbot_v2 form, returning the same answer:

``dashboard``    lead metrics of one workshop over a period (leads, new, converted, conversion rate,
                 average lead score), the dashboard's headline figures.
``appointments`` one workshop's calendar over a period with the customer's name and the vehicle's plate.

Each runs under ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` for a deterministic sample of workshops,
``runs`` times each after one warm-up, so that both schemas are measured with warm caches. The figures:
median execution time per query and schema, plan shapes (how each relation is scanned), buffers, the
schema sizes, and the three success criteria, each met / not met with its figures. A criterion that
could not be measured is ``met: None`` ("not measured"), never a pass.

Index usage of the critical queries is measured like the plan's ``pg_stat_user_tables`` index usage
(``idx_scan / (seq_scan + idx_scan)``), but from ``pg_stat_xact_user_tables`` inside the measuring
transaction: only the test's own scans count, whatever else runs on the server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import statistics

from ansible_collections.carbot.migration.plugins.module_utils import schemas

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by the module
    sql = None

# Success criteria of the plan (targets can be overridden by the module's options).
SPEEDUP_TARGET = 50.0          # percent less median time on carbot_v2
SIZE_REDUCTION_TARGET = 20.0   # percent smaller carbot_v2 (normalisation)
INDEX_USAGE_TARGET = 90.0      # percent of the critical queries' table accesses through an index

# Migration bookkeeping in the target schema: not part of the data model, left out of its size.
EXCLUDED_TARGET_TABLES = ("migration_status", "migration_quarantine")

INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
HEAP_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan")

# {schema} placeholders are filled with sql.Identifier; values are query parameters.
QUERIES = {
    "dashboard": {
        "description": "lead metrics of one workshop over the period (dashboard headline figures)",
        "tables": {"legacy": ["leads"], "target": ["leads"]},
        "legacy": (
            "SELECT count(*) AS leads, "
            "count(*) FILTER (WHERE lower(btrim(l.status)) IN ('new', 'neu')) AS new_leads, "
            "count(*) FILTER (WHERE lower(btrim(l.status)) = 'converted') AS converted, "
            "round(100.0 * count(*) FILTER (WHERE lower(btrim(l.status)) = 'converted') / NULLIF(count(*), 0), 1) "
            "AS conversion_percent, "
            "round(avg(l.lead_score) FILTER (WHERE l.lead_score BETWEEN 0 AND 100), 1) AS avg_score "
            "FROM {schema}.leads l WHERE l.workshop_id = %(workshop)s "
            "AND l.\"timestamp\" >= %(since)s AND l.\"timestamp\" < %(until)s"),
        "target": (
            "SELECT count(*) AS leads, "
            "count(*) FILTER (WHERE l.status = 'new') AS new_leads, "
            "count(*) FILTER (WHERE l.status = 'won') AS converted, "
            "round(100.0 * count(*) FILTER (WHERE l.status = 'won') / NULLIF(count(*), 0), 1) "
            "AS conversion_percent, "
            "round(avg(l.lead_score), 1) AS avg_score "
            "FROM {schema}.leads l WHERE l.workshop_id = %(workshop)s "
            "AND l.captured_at >= %(since)s AND l.captured_at < %(until)s"),
    },
    "appointments": {
        "description": "one workshop's appointments over the period with customer name and licence plate",
        "tables": {"legacy": ["appointments", "customers", "vehicles"],
                   "target": ["appointments", "customers", "customer_vehicles"]},
        "legacy": (
            "SELECT a.id, a.appointment_date, a.appointment_time, a.status, c.name, v.license_plate "
            "FROM {schema}.appointments a "
            "LEFT JOIN {schema}.customers c ON c.id = a.customer_id "
            "LEFT JOIN {schema}.vehicles v ON v.id = a.vehicle_id "
            "WHERE a.workshop_id = %(workshop)s AND a.appointment_date >= %(since)s::date "
            "AND a.appointment_date < %(until)s::date "
            "ORDER BY a.appointment_date, a.appointment_time"),
        "target": (
            "SELECT a.id, a.scheduled_date, a.scheduled_time, a.status, c.full_name, v.license_plate "
            "FROM {schema}.appointments a "
            "LEFT JOIN {schema}.customers c ON c.id = a.customer_id "
            "LEFT JOIN {schema}.customer_vehicles v ON v.id = a.vehicle_id "
            "WHERE a.workshop_id = %(workshop)s AND a.scheduled_date >= %(since)s::date "
            "AND a.scheduled_date < %(until)s::date "
            "ORDER BY a.scheduled_datetime"),
    },
}


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def percent_less(new, old):
    """How much smaller ``new`` is than ``old``, in percent (negative: larger). None if not measurable."""
    if new is None or not old:
        return None
    return round(100.0 * (1.0 - float(new) / float(old)), 1)


# ------------------------------------------------------------------------------- plans
def walk(node, heap=None):
    """Every plan node with the relation it reads (a Bitmap Index Scan reads for its Bitmap Heap Scan)."""
    rel = node.get("Relation Name") or heap
    yield node, rel
    for child in node.get("Plans", []) or []:
        below = rel if node.get("Node Type") in ("Bitmap Heap Scan", "BitmapAnd", "BitmapOr") else None
        yield from walk(child, below)


def plan_shape(plan):
    """``{"scans": {relation: [node types]}, "nodes": [...], "seq_scans": [...], "index_scans": [...]}``."""
    scans, nodes = {}, []
    for node, rel in walk(plan):
        kind = node.get("Node Type")
        nodes.append(kind)
        if rel and (kind in HEAP_NODES or kind in INDEX_NODES):
            label = "%s using %s" % (kind, node["Index Name"]) if node.get("Index Name") else kind
            scans.setdefault(rel, [])
            if label not in scans[rel]:
                scans[rel].append(label)
    return {
        "scans": scans,
        "nodes": nodes,
        "seq_scans": sorted(r for r, kinds in scans.items() if any(k == "Seq Scan" for k in kinds)),
        "index_scans": sorted(r for r, kinds in scans.items()
                              if any(k.split(" using ")[0] in INDEX_NODES for k in kinds)),
    }


def explain(cur, statement, params):
    """Run ``statement`` under EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON); returns the plan document."""
    cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + statement, params)
    doc = cur.fetchone()[0]
    if isinstance(doc, str):  # pragma: no cover - psycopg2 parses json already
        doc = json.loads(doc)
    return doc[0]


def query_statement(query, side, schema):
    return sql.SQL(QUERIES[query][side]).format(schema=sql.Identifier(schema))


# ------------------------------------------------------------------------------- sample and period
def sample_workshops(cur, legacy_schema, target_schema, size, explicit=None):
    """A deterministic sample: workshops present in both schemas, spread by a hash of their id.

    The busiest workshop (most leads) is always included: the slowest dashboard is the one that matters.
    """
    if explicit:
        return [str(w) for w in explicit]
    cur.execute(sql.SQL(
        "SELECT w.id::text FROM {t}.workshops w WHERE EXISTS (SELECT 1 FROM {l}.workshops o WHERE o.id = w.id) "
        "ORDER BY md5(w.id::text) LIMIT %s").format(t=sql.Identifier(target_schema), l=sql.Identifier(legacy_schema)),
        (max(size - 1, 1),))
    sample = [r[0] for r in cur.fetchall()]
    cur.execute(sql.SQL("SELECT workshop_id::text FROM {} GROUP BY workshop_id ORDER BY count(*) DESC, 1 LIMIT 1")
                .format(sql.Identifier(target_schema, "leads")))
    row = cur.fetchone()
    if row and row[0] not in sample:
        sample.insert(0, row[0])
    return sample[:max(size, 1)]


def data_period(cur, target_schema, days, until=None):
    """The measured period: ``days`` up to the newest lead (the data's "now"), or up to ``until``."""
    if until is None:
        cur.execute(sql.SQL("SELECT max(captured_at) FROM {}").format(sql.Identifier(target_schema, "leads")))
        until = cur.fetchone()[0] or datetime.datetime.now(datetime.timezone.utc)
        until = until + datetime.timedelta(seconds=1)
    elif isinstance(until, str):
        until = datetime.datetime.fromisoformat(until)
    since = until - datetime.timedelta(days=days)
    return since, until


# ------------------------------------------------------------------------------- sizes
def schema_size(cur, schema, exclude=()):
    cur.execute("SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (schema,))
    tables = {name: {"total_bytes": total, "table_bytes": heap, "index_bytes": idx}
              for name, total, heap, idx in cur.fetchall() if name not in exclude}
    return {
        "total_bytes": sum(t["total_bytes"] for t in tables.values()),
        "index_bytes": sum(t["index_bytes"] for t in tables.values()),
        "data_bytes": sum(t["total_bytes"] - t["index_bytes"] for t in tables.values()),
        "tables": tables,
    }


# ------------------------------------------------------------------------------- measuring
def _xact_scans(cur, schema, tables):
    cur.execute("SELECT relname, COALESCE(seq_scan, 0), COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables "
                "WHERE schemaname = %s AND relname = ANY(%s)", (schema, list(tables)))
    return {r[0]: {"seq_scan": r[1], "idx_scan": r[2]} for r in cur.fetchall()}


def measure(conn, query, side, schema, workshops, since, until, runs, warmup=1):
    """Run one query for every sampled workshop; returns timings, plan shapes, buffers and table scans.

    Everything runs in one read-only transaction that is rolled back, so that
    ``pg_stat_xact_user_tables`` counts exactly this measurement's scans.
    """
    statement = query_statement(query, side, schema)
    tables = QUERIES[query]["tables"][side]
    times, planning, shapes, buffers, rows = [], [], {}, {"hit": 0, "read": 0}, {}
    with conn.cursor() as cur:
        before = _xact_scans(cur, schema, tables)
        for workshop in workshops:
            params = {"workshop": workshop, "since": since, "until": until}
            for _warmup in range(warmup):
                explain(cur, statement, params)
            for _run in range(runs):
                doc = explain(cur, statement, params)
                times.append(doc.get("Execution Time"))
                planning.append(doc.get("Planning Time"))
                plan = doc["Plan"]
                buffers["hit"] += plan.get("Shared Hit Blocks", 0)
                buffers["read"] += plan.get("Shared Read Blocks", 0)
            shape = plan_shape(plan)
            rows[workshop] = plan.get("Actual Rows")
            key = json.dumps(shape["scans"], sort_keys=True)
            shapes.setdefault(key, {"scans": shape["scans"], "nodes": shape["nodes"], "workshops": 0,
                                    "seq_scans": shape["seq_scans"], "index_scans": shape["index_scans"]})
            shapes[key]["workshops"] += 1
        after = _xact_scans(cur, schema, tables)
    conn.rollback()
    scans = {}
    for table in tables:
        b, a = before.get(table, {}), after.get(table, {})
        scans[table] = {k: a.get(k, 0) - b.get(k, 0) for k in ("seq_scan", "idx_scan")}
    seq = sum(s["seq_scan"] for s in scans.values())
    idx = sum(s["idx_scan"] for s in scans.values())
    return {
        "schema": schema,
        "median_ms": median(times),
        "min_ms": round(min(times), 3) if times else None,
        "max_ms": round(max(times), 3) if times else None,
        "median_planning_ms": median(planning),
        "samples": len(times),
        "rows_per_workshop": rows,
        "buffers_per_run": {k: round(v / max(len(times), 1), 1) for k, v in buffers.items()},
        "plans": sorted(shapes.values(), key=lambda s: -s["workshops"]),
        "table_scans": scans,
        "seq_scans": seq,
        "index_scans": idx,
        "index_usage_percent": round(100.0 * idx / (seq + idx), 1) if seq + idx else None,
    }


def criteria(results, sizes, speedup_target=SPEEDUP_TARGET, size_target=SIZE_REDUCTION_TARGET,
             index_target=INDEX_USAGE_TARGET):
    """The plan's three success criteria, each met true/false (None when not measurable), with figures."""
    out = []
    # 1. queries 50% faster: every critical query must be; the value is the worst query's figure.
    gains, details, unmeasured = [], [], []
    for name, res in sorted(results.items()):
        gain = percent_less(res["target"]["median_ms"], res["legacy"]["median_ms"])
        res["speedup_percent"] = gain
        res["speedup_factor"] = (round(res["legacy"]["median_ms"] / res["target"]["median_ms"], 2)
                                 if res["target"]["median_ms"] and res["legacy"]["median_ms"] else None)
        if gain is None:
            unmeasured.append(name)
        else:
            gains.append(gain)
        details.append("%s: median %s ms legacy, %s ms carbot_v2 (%s%% less)" % (
            name, res["legacy"]["median_ms"], res["target"]["median_ms"], gain))
    worst = min(gains) if gains else None
    met = None if unmeasured or worst is None else worst >= speedup_target
    out.append({"name": "critical queries at least %g%% faster" % speedup_target,
                "target": ">= %g%% less median time, every query" % speedup_target,
                "value": worst, "unit": "percent", "met": met, "detail": "; ".join(details)})
    # 2. database 20% smaller through normalisation.
    legacy_b, target_b = sizes["legacy"]["total_bytes"], sizes["target"]["total_bytes"]
    reduction = percent_less(target_b, legacy_b) if target_b else None
    out.append({"name": "database at least %g%% smaller" % size_target,
                "target": ">= %g%% smaller (tables + indexes)" % size_target,
                "value": reduction, "unit": "percent", "met": None if reduction is None else reduction >= size_target,
                "detail": "legacy %d bytes, carbot_v2 %d bytes (data %d -> %d, indexes %d -> %d)" % (
                    legacy_b, target_b, sizes["legacy"]["data_bytes"], sizes["target"]["data_bytes"],
                    sizes["legacy"]["index_bytes"], sizes["target"]["index_bytes"])})
    # 3. index usage of the critical queries on carbot_v2.
    seq = sum(r["target"]["seq_scans"] for r in results.values())
    idx = sum(r["target"]["index_scans"] for r in results.values())
    usage = round(100.0 * idx / (seq + idx), 1) if seq + idx else None
    per = "; ".join("%s: %s%% (%d index, %d sequential scans)" % (
        n, r["target"]["index_usage_percent"], r["target"]["index_scans"], r["target"]["seq_scans"])
        for n, r in sorted(results.items()))
    out.append({"name": "index usage of the critical queries above %g%%" % index_target,
                "target": "> %g%% of table scans through an index (carbot_v2)" % index_target,
                "value": usage, "unit": "percent", "met": None if usage is None else usage > index_target,
                "detail": per})
    return out


def run(conn, legacy_schema=schemas.LEGACY_SCHEMA, target_schema=schemas.TARGET_SCHEMA,
        queries=("dashboard", "appointments"),
        sample_size=10, workshops=None, runs=5, period_days=90, until=None, analyze=True,
        speedup_target=SPEEDUP_TARGET, size_target=SIZE_REDUCTION_TARGET, index_target=INDEX_USAGE_TARGET):
    """The whole performance test on an open connection (autocommit off)."""
    with conn.cursor() as cur:
        if analyze:
            for schema in (legacy_schema, target_schema):
                for table in sorted({t for q in queries for t in QUERIES[q]["tables"][
                        "legacy" if schema == legacy_schema else "target"]}):
                    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table)))
            conn.commit()
        sample = sample_workshops(cur, legacy_schema, target_schema, sample_size, workshops)
        since, until = data_period(cur, target_schema, period_days, until)
        sizes = {"legacy": schema_size(cur, legacy_schema),
                 "target": schema_size(cur, target_schema, exclude=EXCLUDED_TARGET_TABLES)}
    conn.rollback()
    results = {}
    for query in queries:
        results[query] = {"description": QUERIES[query]["description"]}
        for side, schema in (("legacy", legacy_schema), ("target", target_schema)):
            results[query][side] = measure(conn, query, side, schema, sample, since, until, runs)
        legacy_rows = sum(v or 0 for v in results[query]["legacy"]["rows_per_workshop"].values())
        target_rows = sum(v or 0 for v in results[query]["target"]["rows_per_workshop"].values())
        results[query]["rows"] = {"legacy": legacy_rows, "target": target_rows}
    crit = criteria(results, sizes, speedup_target, size_target, index_target)
    return {
        "workshops": sample,
        "period": {"since": since.isoformat(), "until": until.isoformat(), "days": period_days},
        "runs": runs,
        "queries": results,
        "sizes": {side: {k: v for k, v in s.items() if k != "tables"} for side, s in sizes.items()},
        "table_sizes": {side: s["tables"] for side, s in sizes.items()},
        "criteria": crit,
        "all_met": all(c["met"] is True for c in crit),
    }


def report_part(result):
    """The performance test's part of the migration report."""
    summary = {}
    for name, res in result["queries"].items():
        summary[name] = {
            "legacy_median_ms": res["legacy"]["median_ms"], "target_median_ms": res["target"]["median_ms"],
            "speedup_percent": res.get("speedup_percent"),
            "legacy_plan": res["legacy"]["plans"][0]["scans"] if res["legacy"]["plans"] else {},
            "target_plan": res["target"]["plans"][0]["scans"] if res["target"]["plans"] else {},
            "target_index_usage_percent": res["target"]["index_usage_percent"],
            "rows": res["rows"],
        }
    summary["sizes"] = result["sizes"]
    summary["table_sizes"] = {side: {t: v["total_bytes"] for t, v in sorted(tables.items())}
                              for side, tables in result["table_sizes"].items()}
    summary["sample"] = {"workshops": len(result["workshops"]), "runs": result["runs"], "period": result["period"]}
    return {"criteria": [dict(c, detail=c["detail"]) for c in result["criteria"]],
            "performance": summary}
