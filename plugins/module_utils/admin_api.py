# -*- coding: utf-8 -*-
# Copyright: CarBot operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CarBot admin API as the cutover uses it: maintenance mode (changed, then read back) and the app's health.

carbot.migration.maintenance_state and carbot.migration.app_health run these (issue 14). Each was two
``ansible.builtin.uri`` tasks with ``until``/``retries`` and two ``assert`` tasks in the roles maintenance_mode and
health_check; inside the write freeze each task is freeze time. Here the same requests, the same retries, the same
conditions and the same messages run in one task. :func:`maintenance` and :func:`health` take the module's
parameters and return its result, or raise :class:`AdminApiError` with the message the role's assert gave.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time
from urllib.error import HTTPError

from ansible.module_utils.urls import open_url
from ansible_collections.carbot.migration.plugins.module_utils.errors import CarbotError


# The options every admin API module takes (doc fragment: the modules' own DOCUMENTATION).
API_ARGUMENT_SPEC = dict(
    api_url=dict(type="str", required=True),
    api_token=dict(type="str", required=True, no_log=True),
    timeout=dict(type="int", default=10),
    retries=dict(type="int", default=5),
    delay=dict(type="float", default=2),
)

MAINTENANCE_ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    state=dict(type="str", default="enabled", choices=["enabled", "disabled"]),
    user_message=dict(type="str", default=""),
    read_first=dict(type="bool", default=True),
)

HEALTH_ARGUMENT_SPEC = dict(
    API_ARGUMENT_SPEC,
    expected_schema=dict(type="str", required=True),
    app_version=dict(type="str", default=""),
    migrations=dict(type="bool", default=True),
)


class AdminApiError(CarbotError):
    """The admin API did not answer as required after every attempt; the message says what it answered last."""


def request(params, method, path, body=None):
    """One request: ``(status, parsed JSON body or {}, error text)``; status None when nothing answered."""
    headers = {"Authorization": "Bearer %s" % params["api_token"], "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    url = params["api_url"].rstrip("/") + path
    try:
        response = open_url(url, method=method, headers=headers, data=data, timeout=params["timeout"])
        return response.getcode(), parse(response.read()), ""
    except HTTPError as exc:
        return exc.code, parse(exc.read()), str(exc)
    except Exception as exc:  # noqa: BLE001 - connection refused, timeout, TLS: the attempt failed, say why
        return None, {}, "%s: %s" % (type(exc).__name__, exc)


def parse(raw):
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def until(call, ok, retries, delay, sleep=time.sleep):
    """``call()`` until ``ok(status, body)``, at most ``retries`` + 1 attempts ``delay`` s apart (Ansible's ``until``).
    Returns ``(status, body, error, attempts)`` of the last attempt."""
    attempts = 0
    while True:
        attempts += 1
        status, body, error = call()
        if ok(status, body) or attempts > retries:
            return status, body, error, attempts
        sleep(delay)


def shown(value, missing):
    """A value as the role's messages showed it (Jinja's ``default``): ``missing`` when absent."""
    if value is None:
        return missing
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def maintenance(params, check_mode, sleep=time.sleep):
    """Turn maintenance mode on or off and confirm it by reading it back (role maintenance_mode).

    With ``read_first`` the state is read first and changed only when it differs; that read is then also the
    confirmation (the same GET, the same evidence). Without it (the cutover knows it turned it on) the change is
    sent at once. Check mode: the read runs, nothing is sent.
    """
    want = params["state"] == "enabled"
    url = params["api_url"]
    retries, delay = params["retries"], params["delay"]
    out = dict(changed=False, state=params["state"], previous=None, attempts={})

    def get():
        return request(params, "GET", "/admin/maintenance")

    confirmed = None
    if params["read_first"]:
        status, body, error, out["attempts"]["read"] = until(get, lambda s, b: s == 200, retries, delay, sleep)
        if status != 200:
            raise AdminApiError(
                "The CarBot admin API at %s did not answer GET /admin/maintenance after %d attempts (last status %s: "
                "%s). Nothing was changed." % (url, retries, shown(status, "none"), error), **out)
        out["previous"] = body.get("enabled")
        if body.get("enabled") == want:
            confirmed = body
    if confirmed is None:
        out["changed"] = True
        if check_mode:
            out["msg"] = "Maintenance mode would be %s." % params["state"]
            return out
        status, body, error, out["attempts"]["change"] = until(
            lambda: request(params, "POST", "/admin/maintenance", {"enabled": want, "message": params["user_message"]}),
            lambda s, b: s in (200, 201, 204), retries, delay, sleep)
        if status not in (200, 201, 204):
            raise AdminApiError("Could not set maintenance mode %s at %s after %d attempts (last status %s: %s)." % (
                params["state"], url, retries, shown(status, "none"), error), **out)
        status, body, error, out["attempts"]["confirm"] = until(
            get, lambda s, b: s == 200 and b.get("enabled") == want, retries, delay, sleep)
        if body.get("enabled") != want:
            raise AdminApiError(
                "The admin API at %s does not confirm maintenance mode %s (status %s, enabled=%s)." % (
                    url, params["state"], shown(status, "none"), shown(body.get("enabled"), "unknown")), **out)
        confirmed = body
    out.update(enabled=confirmed.get("enabled"), message=confirmed.get("message"), since=confirmed.get("since"),
               msg="Maintenance mode is %s (confirmed by the admin API)." % params["state"])
    return out


def health(params, sleep=time.sleep):
    """The app's health through the admin API (role health_check): ``/health/database`` until the app resolves
    ``expected_schema`` and can write, then (``migrations``) ``/health/migrations`` until every table is migrated."""
    expected, version = params["expected_schema"], params["app_version"]
    retries, delay = params["retries"], params["delay"]
    out = dict(changed=False, attempts={})

    def database_ok(status, body):
        return (status == 200 and bool(body.get("ok")) and body.get("resolved_schema") == expected
                and bool(body.get("can_write")))

    path = "/health/database" + (("?app_version=%s" % version) if version else "")
    status, body, error, out["attempts"]["database"] = until(
        lambda: request(params, "GET", path), database_ok, retries, delay, sleep)
    out["database"] = dict(body, status=status)
    if not database_ok(status, body):
        raise AdminApiError(
            "/health/database is not healthy after %d attempts: status %s, ok=%s, resolved_schema=%s (expected %s), "
            "can_write=%s, error=%s" % (retries, shown(status, "none"), shown(body.get("ok"), "?"),
                                        shown(body.get("resolved_schema"), "?"), expected,
                                        shown(body.get("can_write"), "?"), body.get("error", error)), **out)
    messages = ["The app%s resolves its tables in %s and can write (%s ms)." % (
        (" (%s version)" % version) if version else "", expected, shown(body.get("latency_ms"), "?"))]
    if params["migrations"]:
        status, body, error, out["attempts"]["migrations"] = until(
            lambda: request(params, "GET", "/health/migrations"), lambda s, b: s == 200 and bool(b.get("ok")),
            retries, delay, sleep)
        out["migrations"] = dict(body, status=status)
        if not (status == 200 and body.get("ok")):
            raise AdminApiError("/health/migrations is not healthy: status %s, reason=%s" % (
                shown(status, "none"), body.get("reason", error)), **out)
        messages.append("/health/migrations reports every table migrated.")
    out["msg"] = " ".join(messages)
    return out
