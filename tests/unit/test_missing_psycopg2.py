"""Without psycopg2 every database module ends with ``missing_required_lib`` instead of a traceback (issue 15).

Each module runs in its own process the way Ansible runs it, with psycopg2 made unimportable
(``sys.modules['psycopg2'] = None`` from a sitecustomize on PYTHONPATH). Before the fix app_privileges,
db_backup and sequences crashed on ``from ...db import sql`` and printed no JSON at all.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# (collection, module): carbot.migration's and the rehearsal collection's (rehearsal/, carbot.rehearsal)
COLLECTIONS = (("migration", REPO), ("rehearsal", REPO / "rehearsal"))
DB_MODULES = sorted((collection, p.stem) for collection, root in COLLECTIONS
                    for p in (root / "plugins" / "modules").glob("*.py")
                    if re.search(r"module_utils import (\w+, )*(db|common)\b|module_utils\.db import", p.read_text()))
EXTRA = {"gdpr": {"action": "verify"}}
BLOCK = ("import sys\n"
         "for _name in ('psycopg2', 'psycopg2.extras', 'psycopg2.errors', 'psycopg2.sql', 'psycopg2.extensions'):\n"
         "    sys.modules[_name] = None\n")


def run_without_psycopg2(tmp_path, name, args, collection="migration"):
    (tmp_path / "sitecustomize.py").write_text(BLOCK)
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH="%s:%s" % (tmp_path, REPO / ".collections"))
    module = "ansible_collections.carbot.%s.plugins.modules.%s" % (collection, name)
    done = subprocess.run([sys.executable, "-m", module, str(args_file)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=60)
    out = done.stdout.strip()
    assert out.startswith("{"), "%s printed no JSON result:\n%s%s" % (name, done.stdout, done.stderr[-2000:])
    return json.loads(out)


def test_every_database_module_is_listed():
    names = {name for _collection, name in DB_MODULES}
    assert {"app_privileges", "db_backup", "sequences", "schema_apply", "data_copy", "legacy_generate"} <= names


@pytest.mark.parametrize("collection,name", DB_MODULES)
def test_missing_psycopg2_is_reported_by_missing_required_lib(tmp_path, collection, name):
    args = {"login_db": "carbot", **EXTRA.get(name, {})}
    for _ in range(5):  # fill in whatever the module requires, as plain strings
        result = run_without_psycopg2(tmp_path, name, args, collection)
        missing = re.match(r"missing required arguments: (.*)", result.get("msg", ""))
        if not missing:
            break
        args.update({arg.strip(): "/tmp/x" for arg in missing.group(1).split(",")})
    assert result.get("failed"), result
    assert "Failed to import the required Python library (psycopg2)" in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
