"""Failure drills: do one thing the moment maintenance mode goes on (the write freeze starts).

Polls GET /admin/maintenance of the admin API stand-in every 50 ms until it says enabled, then:

* ``kill-k8s PIDFILE``: SIGKILL the Kubernetes API stand-in (the API is gone for the rest of the run);
* ``restart-db PGDIR``: restart the scenario's PostgreSQL cluster (``pg_ctl restart -m fast``), every
  connection of the run is cut;
* ``fail-maintenance-off``: every later POST /admin/maintenance (the call that turns it off) answers 503.

Usage: python on_maintenance.py API_URL ACTION [ARG]; the API token comes from $CARBOT_API_TOKEN.
Exits 0 after the action, 2 when maintenance mode did not go on within the timeout.
"""

import json
import os
import signal
import sys
import time
import urllib.request


def call(url, token, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def main(argv):
    api, action = argv[1], argv[2]
    token = os.environ["CARBOT_API_TOKEN"]
    deadline = time.time() + float(os.environ.get("DRILL_TIMEOUT", "300"))
    while time.time() < deadline:
        try:
            if call(api + "/admin/maintenance", token).get("enabled"):
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        print("maintenance mode never went on")
        return 2
    if action == "kill-k8s":
        pid = int(open(argv[3]).read().split()[0])
        os.kill(pid, signal.SIGKILL)
    elif action == "restart-db":
        repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".collections"))
        sys.path.insert(0, repo)
        from ansible_collections.carbot.rehearsal.plugins.module_utils.local_cluster import LocalCluster

        cluster = LocalCluster(argv[3])
        cluster._run(["pg_ctl", "restart", "-w", "-m", "fast", "-D", cluster.data_dir, "-l", cluster.log_file, "-s"])
    elif action == "fail-maintenance-off":
        call(api + "/_control/faults", token, "POST",
             [{"endpoint": "/admin/maintenance", "method": "POST", "status": 503}])
    else:
        raise SystemExit("unknown action %s" % action)
    print("%s done %.3f" % (action, time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
