"""The stand-ins' parts for the online cutover (issue 17), over HTTP as the playbooks use them.

* Kubernetes: a rolling update keeps old and new pods for about replicas x pod_ready_seconds, and
  ``GET /_standin/rollout-timeline`` (same bearer token) says, change by change, how many pods of each revision
  exist and are ready: at some moment both revisions are ready, at the end only the new one.
* Admin API: ``/health/database?app_version=new`` checks as the new version's role (its own search_path), 404
  without one configured, 400 for an unknown version.
"""

import json
import pathlib
import ssl
import sys
import time
import urllib.error
import urllib.request

import psycopg2
import psycopg2.sql
import pytest
from conftest import make_app_role

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.standins.admin_api import start_admin_api  # noqa: E402
from tests.standins.k8s_api import DEPLOYMENTS, TIMELINE_PATH, StandIn  # noqa: E402

TOKEN = "online-standins-token"  # throwaway credentials of loopback stand-ins and a test cluster, not secrets
NEW_PASSWORD = "standins-new-role"


def get(url, token=None, context=None):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer %s" % token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_rolling_update_keeps_both_revisions_and_the_timeline_says_so(tmp_path):
    with StandIn(token=TOKEN, pod_ready_seconds=1.0, work_dir=tmp_path) as server:
        server.api.ensure_namespace("carbot")
        server.api.seed_deployment("carbot-app", "carbot", "carbot/app:1.9.0", replicas=2)
        time.sleep(0.5)
        since = time.time()
        with server.api.store.lock:
            deployment = json.loads(json.dumps(server.api.store.get(DEPLOYMENTS, "carbot", "carbot-app")))
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "carbot/app:2.0.0"
        server.api.update_object(DEPLOYMENTS, "carbot", "carbot-app", deployment)
        context = ssl.create_default_context(cafile=str(server.ca_file))
        context.check_hostname = False
        deadline = time.time() + 30
        while time.time() < deadline:
            status, body = get(server.url + TIMELINE_PATH + "?since=%f" % since, TOKEN, context)
            assert status == 200, body
            last = body["timeline"][-1]["revisions"] if body["timeline"] else {}
            if [r["image"] for r in last.values()] == ["carbot/app:2.0.0"] and all(
                    r["ready"] == 2 for r in last.values()):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the rollout did not complete: %s" % body)
        entries = body["timeline"]
        both = [e for e in entries if sum(1 for r in e["revisions"].values() if r["ready"] > 0) == 2]
        assert both, entries
        assert entries[-1]["ts"] - entries[0]["ts"] >= 1.5  # ~2 x pod_ready_seconds
        assert get(server.url + TIMELINE_PATH, None, context)[0] == 401  # same auth as the API


@pytest.fixture
def roles_db(legacy_db):
    """An old role on the default path and a new one whose own path starts with carbot_v2."""
    db = legacy_db
    db.query("CREATE SCHEMA carbot_v2; CREATE TABLE carbot_v2.leads (id bigserial PRIMARY KEY, note text)")
    suffix = db.dbname.split("_")[-1]
    db.old_role, db.new_role = (make_app_role(db, NEW_PASSWORD, schemas=("public", "carbot_v2"), sequences="ALL",
                                              name="%s_%s" % (version, suffix)) for version in ("old", "new"))
    db.query(psycopg2.sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO carbot_v2, public").format(
        psycopg2.sql.Identifier(db.new_role), psycopg2.sql.Identifier(db.dbname)))
    return db


def test_health_as_the_new_version_role(roles_db):
    db = roles_db
    dsn = "host=%s port=%s dbname=%s user=%%s password=%s" % (db.host, db.port, db.dbname, NEW_PASSWORD)
    with start_admin_api(TOKEN, dsn % db.old_role, status_dsn=db.dsn, new_db_dsn=dsn % db.new_role) as api:
        status, old = get(api.url + "/health/database")
        assert status == 200 and old["resolved_schema"] == "public" and old["current_user"] == db.old_role, old
        status, new = get(api.url + "/health/database?app_version=new")
        assert status == 200 and new["resolved_schema"] == "carbot_v2" and new["current_user"] == db.new_role, new
        assert new["can_write"] is True
        assert get(api.url + "/health/database?app_version=newest")[0] == 400
        assert NEW_PASSWORD not in json.dumps(api.api.log.list())
    with start_admin_api(TOKEN, dsn % db.old_role, status_dsn=db.dsn) as api:
        status, body = get(api.url + "/health/database?app_version=new")
        assert status == 404 and "no new app version" in body["error"], body
    psycopg2.connect(dsn % db.new_role).close()
