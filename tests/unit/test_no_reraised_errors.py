"""No task re-raises a module error through no_log + ignore_errors + assert (issue 15: 19 such tasks printed
every failure twice, with '...ignoring' lines). A module task fails by itself; a rescue reads its message."""

import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            if key in node:
                yield from tasks(node[key])


def test_no_task_ignores_errors():
    offenders = []
    for path in sorted(list((REPO / "roles").rglob("tasks/*.yml")) + list((REPO / "playbooks").rglob("*.yml"))):
        for task in tasks(yaml.safe_load(path.read_text()) or []):
            if task.get("ignore_errors"):
                offenders.append("%s: %s" % (path.relative_to(REPO), task.get("name")))
    assert not offenders, offenders
