"""module_utils/admin_api.py (modules maintenance_state and app_health) over a real loopback HTTP server that
answers as the CarBot admin API does: retries as Ansible's until/retries counted them, the read-back confirmation,
and the roles' failure messages."""

import http.server
import json
import threading

import pytest
from ansible_collections.carbot.migration.plugins.module_utils import admin_api


class Api(http.server.BaseHTTPRequestHandler):
    state = {}

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def do_GET(self):  # noqa: N802 - http.server's name
        s = self.state
        s["requests"].append(("GET", self.path))
        if self.path == "/admin/maintenance":
            self.answer(200, {"enabled": s["enabled"], "message": s["message"], "since": "now"})
        elif self.path.startswith("/health/database"):
            bad = s["db_bad"] > 0
            s["db_bad"] -= 1
            self.answer(503 if bad else 200, {"ok": not bad, "resolved_schema": "public" if bad else "carbot_v2",
                                              "can_write": not bad, "latency_ms": 3,
                                              "error": "not yet" if bad else None})
        elif self.path == "/health/migrations":
            self.answer(200 if s["migrated"] else 503, {"ok": s["migrated"], "reason": "leads not copied"})

    def do_POST(self):  # noqa: N802 - http.server's name
        s = self.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        s["requests"].append(("POST", self.path))
        assert self.headers["Authorization"] == "Bearer t0k"
        if s["post_fail"] > 0:
            s["post_fail"] -= 1
            return self.answer(503, {"error": "busy"})
        if not s["ignore_post"]:
            s["enabled"], s["message"] = body["enabled"], body.get("message", "")
        self.answer(200, {"enabled": s["enabled"]})


@pytest.fixture
def api():
    Api.state = {"enabled": False, "message": "", "requests": [], "post_fail": 0, "ignore_post": False, "db_bad": 0,
                 "migrated": True}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Api.state, "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()


def params(url, **more):
    out = dict(api_url=url, api_token="t0k", timeout=5, retries=2, delay=0.0, state="enabled", user_message="back soon",
               read_first=True)
    out.update(more)
    return out


def test_maintenance_reads_changes_and_confirms_and_is_idempotent(api):
    state, url = api
    state["post_fail"] = 1  # the first POST is refused: retried
    result = admin_api.maintenance(params(url), check_mode=False)
    assert result["changed"] and result["enabled"] is True and result["previous"] is False
    assert result["attempts"] == {"read": 1, "change": 2, "confirm": 1}
    assert state["requests"] == [("GET", "/admin/maintenance"), ("POST", "/admin/maintenance"),
                                 ("POST", "/admin/maintenance"), ("GET", "/admin/maintenance")]
    assert result["msg"] == "Maintenance mode is enabled (confirmed by the admin API)."
    state["requests"].clear()
    again = admin_api.maintenance(params(url), check_mode=False)  # already on: the read is the confirmation
    assert not again["changed"] and again["enabled"] is True and state["requests"] == [("GET", "/admin/maintenance")]
    off = admin_api.maintenance(params(url, state="disabled", read_first=False), check_mode=True)
    assert off["changed"] and state["enabled"] is True  # check mode sends nothing
    off = admin_api.maintenance(params(url, state="disabled", read_first=False), check_mode=False)
    assert off["changed"] and off["enabled"] is False and state["enabled"] is False


def test_maintenance_fails_when_not_confirmed_or_refused(api):
    state, url = api
    state["ignore_post"] = True  # accepted, never applied: the read-back must not confirm it
    with pytest.raises(admin_api.AdminApiError) as failed:
        admin_api.maintenance(params(url), check_mode=False)
    assert failed.value.msg == ("The admin API at %s does not confirm maintenance mode enabled (status 200, "
                                "enabled=False)." % url)
    state["post_fail"] = 5
    with pytest.raises(admin_api.AdminApiError) as failed:
        admin_api.maintenance(params(url), check_mode=False)
    assert failed.value.msg.startswith(
        "Could not set maintenance mode enabled at %s after 2 attempts (last status 503" % url)
    with pytest.raises(admin_api.AdminApiError) as failed:
        admin_api.maintenance(params("http://127.0.0.1:9"), check_mode=False)
    assert "did not answer GET /admin/maintenance after 2 attempts (last status none" in failed.value.msg
    assert failed.value.msg.endswith("Nothing was changed.")


def test_health_retries_until_healthy_then_checks_migrations(api):
    state, url = api
    state["db_bad"] = 2  # healthy at the third attempt: retries=2 allows it
    result = admin_api.health(params(url, expected_schema="carbot_v2", app_version="", migrations=True))
    assert result["attempts"] == {"database": 3, "migrations": 1}
    assert result["msg"] == ("The app resolves its tables in carbot_v2 and can write (3 ms). "
                             "/health/migrations reports every table migrated.")
    state["db_bad"] = 3
    with pytest.raises(admin_api.AdminApiError) as failed:
        admin_api.health(params(url, expected_schema="carbot_v2", app_version="", migrations=True))
    assert failed.value.msg == ("/health/database is not healthy after 2 attempts: status 503, ok=False, "
                                "resolved_schema=public (expected carbot_v2), can_write=False, error=not yet")
    state["db_bad"], state["migrated"] = 0, False
    with pytest.raises(admin_api.AdminApiError) as failed:
        admin_api.health(params(url, expected_schema="carbot_v2", app_version="new", migrations=True))
    assert failed.value.msg == "/health/migrations is not healthy: status 503, reason=leads not copied"
    assert ("GET", "/health/database?app_version=new") in state["requests"]
