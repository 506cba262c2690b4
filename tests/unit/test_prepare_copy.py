"""prepare.yml copies chat_sessions and exactly the tables it depends on (issue 14): a copied row's parents must be in
carbot_v2 already (the copy locks them), and nothing more belongs there (the rest is migrate.yml's)."""

import pathlib

import yaml
from ansible_collections.carbot.migration.plugins.module_utils import mapping

REPO = pathlib.Path(__file__).resolve().parents[2]


def ancestors(name, by_target, seen=None):
    seen = set() if seen is None else seen
    for parent in by_target[name].get("depends_on") or []:
        if parent not in seen:
            seen.add(parent)
            ancestors(parent, by_target, seen)
    return seen


def test_prepare_copies_the_chat_sessions_with_exactly_their_ancestors():
    plays = yaml.safe_load((REPO / "playbooks" / "prepare.yml").read_text())
    copies = [role.get("vars", {}) for play in plays for role in play.get("roles", [])
              if isinstance(role, dict) and role.get("role") == "carbot.migration.data_copy"]
    assert len(copies) == 1, copies
    by_target = {t["target"]: t for t in mapping.TABLES}
    assert sorted(copies[0]["data_copy_tables"]) == sorted({"chat_sessions"} | ancestors("chat_sessions", by_target))
    assert "sessions" in copies[0]["data_copy_job_file"]  # not the job file migrate.yml follows
