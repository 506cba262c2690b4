"""The admin API modules run in the controller's process on a local connection (plugin_utils/controller_module.py):
no AnsibleModule strips their no_log options from what they return there, so the action plugin must. An admin API
that echoes the bearer token into its error (a proxy's debug page, a buggy handler) must not put the token into
Ansible's output, not even with -vvv, on the in-process path nor on the module path."""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "tok-3f1c9a-echoed-by-the-api"


class EchoingApi(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps({"ok": False, "can_write": False,
                           "error": "rejected %s" % self.headers.get("Authorization")}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["in the controller's process", "as a module (the task has an environment)"])
def test_a_token_the_api_echoes_is_masked(api, tmp_path, path):
    environment = "\n      environment: {CARBOT_PROBE: '1'}" if path.startswith("as a module") else ""
    playbook = tmp_path / "health.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Health of an API that echoes the token
      carbot.migration.app_health:
        api_url: %s
        api_token: %s
        expected_schema: carbot_v2
        retries: 0
        delay: 0%s
""" % (api, TOKEN, environment))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               PATH="%s:%s" % (pathlib.Path(sys.executable).parent, os.environ.get("PATH", "")))
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-vvv",
                           "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable],
                          capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    # the failure is there, and says what the API answered, with the token masked
    assert "/health/database" in out and "rejected Bearer ********" in out, out[-3000:]
    assert TOKEN not in out
