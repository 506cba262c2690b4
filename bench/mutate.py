#!/usr/bin/env python3
"""Mutation check: do the tests catch small bugs in the core? (issue 13)

Each mutation is one text replacement in one core file (copy engine, sync, validation, mapping declaration,
mapping SQL) and the test files that should catch it. For each mutation, one after another, on a throwaway
copy of the working tree (never the working tree itself, so an interrupted run leaves nothing behind):
put the bug in, run the tests (``pytest -x`` with a per-test timeout and a wall limit per mutation), take the
bug out, record caught / not caught and the first failing test. A baseline run without any mutation comes
first: tests that fail without a bug prove nothing.

    python bench/mutate.py                 # all mutations (make mutation)
    python bench/mutate.py --list          # names only
    python bench/mutate.py --only copy-do-update --only checksum-no-legacy-raw
    python bench/mutate.py --json bench/results/mutation.json

Exit status: 0 when every mutation was caught, 1 when one survived, 2 when the baseline failed or a mutation's
old text is not in its file any more (the list needs updating along with the code).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent

# Relevant test files per area (the suite a developer runs after touching that area).
COPY = ["tests/integration/test_copy_engine.py", "tests/integration/test_copy_conflicts.py",
        "tests/integration/test_copy_race.py"]
SYNC = ["tests/integration/test_sync.py", "tests/integration/test_sync_dependencies.py"]
ROUND_TRIP = ["tests/integration/test_round_trip.py"]
VALIDATION = ["tests/integration/test_validation.py", "tests/integration/test_validation_coverage.py"]
MAPPING_SQL = ["tests/unit/test_mapping_rules.py", "tests/integration/test_oracle.py",
               "tests/integration/test_schema_mapping.py"]
DECLARATION = ["tests/unit/test_mapping_rules.py", "tests/integration/test_declaration_references.py",
               "tests/integration/test_schema_mapping.py"] + SYNC

CE, SY, VA, MA = ("plugins/module_utils/copy_engine.py", "plugins/module_utils/sync.py",
                  "plugins/module_utils/validation.py", "plugins/module_utils/mapping.py")
SQ = "plugins/module_utils/sync_sql.py"  # the generated trigger SQL (sync.py installs, checks and repairs)
RULES, PEOPLE, LEADS, OPS = ("sql/mapping/010_rules.sql", "sql/mapping/030_views_people.sql",
                             "sql/mapping/040_views_leads_chat.sql", "sql/mapping/050_views_operations.sql")


def m(name, path, old, new, tests, what):
    return {"name": name, "file": path, "old": old, "new": new, "tests": tests, "what": what}


MUTATIONS = [
    # --- copy engine
    m("copy-do-update", CE,
      '" ON CONFLICT ({tkey}) DO NOTHING RETURNING 1)").format(',
      '" ON CONFLICT ({tkey}) DO UPDATE SET ({cols}) = ROW({ex}) RETURNING 1)").format(ex=_cols(spec.columns, '
      '"excluded"),',
      COPY, "the copy overwrites rows the sync already wrote (DO UPDATE instead of DO NOTHING)"),
    m("copy-keyset-upper-bound", CE,
      '" WHERE {vrow} <= (SELECT {skey} FROM bound) {lower_view}),"',
      '" WHERE {vrow} < (SELECT {skey} FROM bound) {lower_view}),"',
      COPY, "keyset off by one: the last key of every batch is never copied"),
    m("copy-ignores-stale-rows", CE,
      "if n_stale or n_locked < n_wanted or n_entered:", "if n_locked < n_wanted or n_entered:",
      COPY, "a batch whose rows changed under its snapshot is committed anyway"),
    m("copy-ignores-gone-parents", CE,
      "if n_stale or n_locked < n_wanted or n_entered:", "if n_stale or n_entered:",
      COPY, "a batch whose parent rows went under it is committed anyway"),
    m("copy-counts-quarantine-as-copied", CE,
      '{"rows_copied": n_ins, "rows_quarantined": n_q}', '{"rows_copied": n_ins + n_q, "rows_quarantined": n_q}',
      COPY, "the checkpoint counts quarantined rows as copied"),
    # --- sync
    m("sync-no-advisory-lock", SQ,
      '    body = [\n        sql.SQL("PERFORM pg_advisory_xact_lock({}, {});").format(sql.Literal(plan.lock_id(name)), '
      'key_hash(keys)),\n        _log_change(plan, name, _key_text(keys)),\n        sql.SQL("SELECT {cols}, '
      'v._quarantine_reason INTO v_r',
      '    body = [\n        _log_change(plan, name, _key_text(keys)),\n        sql.SQL("SELECT {cols}, '
      'v._quarantine_reason INTO v_r',
      SYNC, "the row sync function no longer takes the advisory lock of its key"),
    m("sync-no-slug-dependency", SQ,
      '''        ("workshops", "SELECT w.id FROM {legacy}.workshops w WHERE w.slug IN (SELECT r.slug || '-v2' '''
      '''FROM {rows} r)"),\n''', "",
      SYNC, "a workshop's rename no longer re-projects its '-v2' twin (EXTRA_DEPENDENCIES)"),
    m("sync-upsert-does-nothing", SQ,
      '    conflict = _on_conflict("t", non_key)\n    q = plan.rel("target", QUARANTINE)',
      '    conflict = sql.SQL("DO NOTHING")\n    q = plan.rel("target", QUARANTINE)',
      SYNC, "the sync inserts new rows but never updates existing ones"),
    m("sync-keeps-quarantine-row", SQ,
      'body.append(sql.SQL("DELETE FROM {q} WHERE {m};").format(q=q, m=qmatch))',
      'body.append(sql.SQL("DELETE FROM {q} WHERE false AND {m};").format(q=q, m=qmatch))',
      SYNC, "a row that leaves the quarantine stays in migration_quarantine as well"),
    m("sync-reverse-ignores-update", SQ,
      '"IF TG_OP <> \'DELETE\' THEN INSERT INTO {src} AS s ({cols}) SELECT {vcols} FROM {view} v WHERE {m} "',
      '"IF TG_OP = \'INSERT\' THEN INSERT INTO {src} AS s ({cols}) SELECT {vcols} FROM {view} v WHERE {m} "',
      ROUND_TRIP, "the reverse sync writes new rows to the legacy schema but not updates"),
    m("sync-raw-key-kept", SQ,
      '''sql.SQL("NEW.legacy_raw := NULLIF(NEW.legacy_raw - TG_ARGV[0], '{}'::jsonb);"),''',
      '''sql.SQL("NEW.legacy_raw := NEW.legacy_raw;"),''',
      ROUND_TRIP, "a column the new app writes keeps its set-aside original (the old invalid value comes back)"),
    m("sync-reverse-no-reprojection", SQ,
      '''    body = [sql.SQL("IF current_setting({s}, true) = {o} THEN RETURN NULL; END IF;").format(
        s=sql.Literal(ORIGIN_SETTING), o=sql.Literal(FORWARD)), sql.SQL("BEGIN")]''',
      '''    body = [sql.SQL("IF current_setting({s}, true) = {o} THEN RETURN NULL; END IF;").format(
        s=sql.Literal(ORIGIN_SETTING), o=sql.Literal(FORWARD)), sql.SQL("BEGIN"),
        sql.SQL("PERFORM set_config({}, 'reverse', true);").format(sql.Literal(ORIGIN_SETTING))]''',
      ROUND_TRIP, "the reverse sync marks the loop setting: its legacy write is not re-projected into carbot_v2"),
    m("sync-no-change-log", SQ,
      '''    return sql.SQL("INSERT INTO {log} (target_table, key) VALUES ({t}, {k});").format(''',
      '''    return sql.SQL("PERFORM 1 WHERE {t} IS NULL AND {k} IS NULL;").format(''',
      ["tests/integration/test_change_log.py"], "the sync functions no longer log the keys they write"),
    m("sync-statement-no-delete", SQ,
      'gone = sql.SQL("DELETE FROM {target} t USING k WHERE {tkm} AND NOT EXISTS (SELECT 1 FROM v WHERE "',
      'gone = sql.SQL("DELETE FROM {target} t USING k WHERE false AND {tkm} AND NOT EXISTS (SELECT 1 FROM v WHERE "',
      ["tests/integration/test_odd_data.py", "tests/integration/test_sync.py", "tests/integration/test_oracle.py",
       "tests/integration/test_sync_load.py"],
      "the statement-level sync never deletes a target row whose legacy row went or got quarantined"),
    m("repair-target-goes-forward", SY,
      '''            if (truth == "target" and t["kind"] == "row" and item["found"] in ("extra", "different")''',
      '''            if (truth == "nobody" and t["kind"] == "row" and item["found"] in ("extra", "different")''',
      ROUND_TRIP, "the rollback's repair re-syncs from legacy instead of writing the legacy row from carbot_v2"),
    # --- validation
    m("checksum-no-legacy-raw", VA,
      'sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c in spec.columns)',
      'sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c in spec.columns if c != "legacy_raw")',
      VALIDATION, "the checksum leaves out legacy_raw"),
    m("checksum-drops-last-column", VA,
      'sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c in spec.columns)',
      'sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c in spec.columns[:-1])',
      VALIDATION, "the checksum leaves out the last column of every table"),
    m("counts-ignore-quarantine", VA,
      "ok = source == target + quarantined", "ok = source >= target",
      VALIDATION, "counts pass when quarantined rows are missing"),
    m("consent-null-not-checked", VA,
      '"WHERE t.{tc} IS TRUE AND s.{lc} IS NOT TRUE").format(',
      '"WHERE t.{tc} IS TRUE AND s.{lc} IS FALSE").format(',
      VALIDATION, "consent fabricated from legacy NULL goes unnoticed"),
    m("quality-off-by-one", VA,
      "if invalid > self.quality_max_invalid:", "if invalid >= self.quality_max_invalid:",
      VALIDATION, "quality fails at the allowed number of invalid values"),
    # --- declaration
    m("declaration-user-required-optional", MA,
      '_ref("user_id", "users", True))),\n    _table("customers"',
      '_ref("user_id", "users", False))),\n    _table("customers"',
      DECLARATION, "team_members.user_id becomes an optional reference (SET NULL instead of CASCADE)"),
    m("declaration-organization-id-twin", MA,
      'return uuid.uuid3(ID_NAMESPACE, "organization:" + owner_key)',
      'return uuid.uuid3(ID_NAMESPACE, "organisation:" + owner_key)',
      DECLARATION, "the Python twin of the organization id differs from the SQL rule"),
    # --- mapping SQL
    m("price-zero-becomes-null", OPS,
      "       s.description,\n       CASE WHEN s.price_cents >= 0 THEN s.price_cents END AS price_cents,",
      "       s.description,\n       CASE WHEN s.price_cents > 0 THEN s.price_cents END AS price_cents,",
      MAPPING_SQL, "every service price 0 becomes NULL (only negatives should)"),
    m("lead-score-zero-rejected", LEADS,
      "CASE WHEN l.lead_score BETWEEN 0 AND 100 THEN l.lead_score END AS lead_score,",
      "CASE WHEN l.lead_score BETWEEN 1 AND 100 THEN l.lead_score END AS lead_score,",
      MAPPING_SQL, "lead score 0 becomes NULL"),
    m("vehicle-year-two-ahead", RULES,
      "THEN pg_catalog.date_part('year', pg_catalog.timezone('UTC', created_at))::integer + 1 END, 2100)",
      "THEN pg_catalog.date_part('year', pg_catalog.timezone('UTC', created_at))::integer + 2 END, 2100)",
      MAPPING_SQL, "vehicle years two years after the row's creation are kept"),
    m("email-without-tld-accepted", RULES,
      "'^[^@[:space:]]+@[^@[:space:].]+(?:\\.[^@[:space:].]+)+$')",
      "'^[^@[:space:]]+@[^@[:space:].]+(?:\\.[^@[:space:].]+)*$')",
      MAPPING_SQL, "'max@web' counts as a valid email"),
    m("berlin-time-as-utc", RULES,
      "THEN pg_catalog.timezone('Europe/Berlin', local_date + local_time) END",
      "THEN pg_catalog.timezone('UTC', local_date + local_time) END",
      MAPPING_SQL, "appointment times are read as UTC instead of Europe/Berlin"),
    m("freie-werkstatt-unknown", RULES,
      "WHEN 'freie werkstatt' THEN 'independent'", "WHEN 'freie-werkstatt' THEN 'independent'",
      MAPPING_SQL, "'Freie Werkstatt' is no longer mapped to independent"),
    m("chat-history-object-kept", RULES,  # the inlined fast path: the views wrap objects there
      "        WHEN 'object' THEN '[]'::jsonb || raw\n", "        WHEN 'object' THEN raw\n",
      MAPPING_SQL, "a chat history object is not wrapped in an array"),
    m("name-particle-von-dropped", RULES,
      "particles constant text[] := ARRAY['von', 'van',", "particles constant text[] := ARRAY['van',",
      MAPPING_SQL, "'von' is no longer a name particle"),
    m("slug-stripped-although-taken", PEOPLE,
      "       CASE WHEN w.slug ~ '-v2$'\n             AND NOT EXISTS (SELECT 1 FROM workshops s WHERE s.slug = "
      "strip_slug_suffix(w.slug))\n",
      "       CASE WHEN w.slug ~ '-v2$'\n             AND NOT EXISTS (SELECT 1 FROM workshops s WHERE s.slug = "
      "w.slug || '-taken')\n",
      MAPPING_SQL, "'-v2' is stripped even when the stripped slug is taken"),
    m("set-aside-blank", RULES,
      "SELECT CASE WHEN kept IS NULL AND pg_catalog.btrim(raw) <> '' THEN raw END",
      "SELECT CASE WHEN kept IS NULL THEN raw END",
      MAPPING_SQL, "blank legacy values are put into legacy_raw"),
]


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                         capture_output=True).stdout.decode()
    # .venv is a symlink in some clones (not matched by .gitignore's `.venv/`): linked below, never copied
    return [p for p in out.split("\0") if p and p != ".venv"]


def make_copy(dest):
    """The working tree as it is (committed or not), without ignored files; .venv linked, not copied."""
    for rel in tracked_files():
        src, dst = REPO / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    os.symlink(os.path.realpath(REPO / ".venv"), dest / ".venv")
    # the spec the tests read lives beside the clone (../shared): make it resolve from the copy as well
    shared = REPO.parent / "shared"
    if shared.exists() and not (dest.parent / "shared").exists():
        os.symlink(shared, dest.parent / "shared")


def run_tests(copy, tests, per_test, wall):
    cmd = [str(copy / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "--timeout=%d" % per_test, "-o", "addopts=--strict-markers"] + tests
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=wall)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = "wall-timeout"
    return rc, out, round(time.monotonic() - t0, 1)


def first_failure(out):
    found = re.search(r"^(FAILED|ERROR) (\S+)", out, re.M)
    if found:
        return found.group(2)
    return "timeout" if "Timeout" in out else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", help="run only these mutations (by name)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=int, default=120, help="per-test timeout in seconds (pytest-timeout)")
    ap.add_argument("--wall", type=int, default=600, help="wall limit per mutation in seconds")
    ap.add_argument("--json", help="write the results here as well")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without mutations")
    args = ap.parse_args()
    chosen = [x for x in MUTATIONS if not args.only or x["name"] in args.only]
    if args.list:
        for x in MUTATIONS:
            print("%-36s %-40s %s" % (x["name"], x["file"], x["what"]))
        return 0
    if args.only and len(chosen) != len(set(args.only)):
        print("unknown mutation(s): %s" % sorted(set(args.only) - {x["name"] for x in MUTATIONS}))
        return 2
    stale = []
    for x in chosen:
        n = (REPO / x["file"]).read_text(encoding="utf-8").count(x["old"])
        if n != 1:
            stale.append("%s: old text found %d times in %s" % (x["name"], n, x["file"]))
    if stale:
        print("mutation list out of date:\n  " + "\n  ".join(stale))
        return 2

    base = pathlib.Path(tempfile.mkdtemp(prefix="carbot-mutate-"))
    copy = base / "repo"
    results = []
    started = time.monotonic()
    try:
        make_copy(copy)
        if not args.no_baseline:
            tests = sorted({t for x in chosen for t in x["tests"]})
            print("baseline: %s" % " ".join(tests), flush=True)
            rc, out, secs = run_tests(copy, tests, args.timeout, args.wall * 3)
            if rc != 0:
                print(out[-4000:])
                print("baseline FAILED (%s) in %.0f s: fix the tests before measuring mutations" % (rc, secs))
                return 2
            print("baseline passed in %.0f s" % secs, flush=True)
        for i, x in enumerate(chosen, 1):
            target = copy / x["file"]
            original = target.read_text(encoding="utf-8")
            target.write_text(original.replace(x["old"], x["new"]), encoding="utf-8")
            try:
                rc, out, secs = run_tests(copy, x["tests"], args.timeout, args.wall)
            finally:
                target.write_text(original, encoding="utf-8")
            caught = rc != 0 and rc != 5
            rec = {"name": x["name"], "file": x["file"], "what": x["what"], "caught": caught, "returncode": rc,
                   "by": first_failure(out) if caught else None, "seconds": secs}
            results.append(rec)
            print("[%2d/%d] %-36s %-11s %6.1f s  %s" % (i, len(chosen), x["name"],
                                                       "caught" if caught else "NOT CAUGHT", secs,
                                                       rec["by"] or x["what"]), flush=True)
            if not caught:
                print("        " + "\n        ".join(out.strip().splitlines()[-3:]))
    except KeyboardInterrupt:
        print("interrupted: the working tree was never touched; removing the copy")
        return 130
    finally:
        shutil.rmtree(base, ignore_errors=True)  # symlinks inside (.venv, shared) are unlinked, not followed
    caught = sum(r["caught"] for r in results)
    total = time.monotonic() - started
    print("\nmutation score: %d of %d caught (%.0f s in all)" % (caught, len(results), total))
    for r in results:
        if not r["caught"]:
            print("  not caught: %s (%s): %s" % (r["name"], r["file"], r["what"]))
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps({"caught": caught, "total": len(results),
                                                       "seconds": round(total), "results": results}, indent=2))
    return 0 if caught == len(results) else 1


def _terminated(_signum, _frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)  # kill <pid>: clean up like Ctrl-C
    sys.exit(main())
