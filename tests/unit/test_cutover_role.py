"""The cutover reads top to bottom in one role (issue 16): the playbooks are thin, every include of the role
names a file of the role, and every step of the write freeze says which step runs and marks its start with the
label bench/freeze_window.py and the rescues read."""

import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "cutover"
TASKS = ROLE / "tasks"

# the step each freeze/online task file is, as the report's events and the rescue's message name it
STEPS = {
    "freeze/maintenance_on.yml": "maintenance on",
    "freeze/final_sync.yml": "final sync check",
    "freeze/switch.yml": "search_path switch",
    "freeze/rollout.yml": "rollout",
    "freeze/health.yml": "health checks",
    "freeze/switch_back.yml": "search_path back",
    "freeze/rollout_undo.yml": "rollout undo",
    "freeze/health_legacy.yml": "health checks",
    "online/rollout.yml": "rollout (online)",
    "online/switch.yml": "search_path switch",
}


def tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "roles"):
            if key in node:
                yield from tasks(node[key])


def load(path):
    return yaml.safe_load(path.read_text()) or []


def test_the_playbooks_are_the_inventory_check_and_the_role():
    for playbook, entry in (("cutover.yml", None), ("rollback.yml", "rollback")):
        plays = load(REPO / "playbooks" / playbook)
        assert [r["role"] for r in plays[0]["roles"]] == ["carbot.migration.inventory_check"]
        play = plays[1]
        assert "group/carbot.migration.db" in play["module_defaults"]
        if entry is None:
            assert [r["role"] for r in play["roles"]] == ["carbot.migration.cutover"] and "tasks" not in play
        else:
            (task,) = play["tasks"]
            assert task["ansible.builtin.import_role"] == {"name": "carbot.migration.cutover", "tasks_from": entry}
    assert not (REPO / "playbooks" / "tasks").exists()


def test_every_entry_point_has_its_argument_spec():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(specs) == {"main", "rollback"}
    assert all((TASKS / ("%s.yml" % entry)).is_file() for entry in specs)


def test_every_include_names_a_task_file_of_the_role():
    for path in sorted(TASKS.rglob("*.yml")):
        for task in tasks(load(path)):
            included = task.get("ansible.builtin.include_tasks")
            if isinstance(included, dict):
                included = included["file"]
            if included:
                assert (TASKS / included).is_file(), "%s: %s" % (path.relative_to(REPO), included)


def test_every_step_says_which_step_runs_and_marks_its_start():
    for name, step in STEPS.items():
        first, *rest = load(TASKS / name)
        assert first["ansible.builtin.set_fact"]["cutover_step"] == step, name
        events = [t["carbot.migration.report_event"] for t in rest if "carbot.migration.report_event" in t]
        # maintenance on marks its event once maintenance mode is confirmed on (the window starts there)
        label = "maintenance on" if step == "maintenance on" else "{{ cutover_step }}"
        assert events and events[0]["label"] == label, name
    assert set(STEPS) == {str(p.relative_to(TASKS)) for d in ("freeze", "online") for p in (TASKS / d).glob("*.yml")
                          if p.name != "preflight.yml"}


def test_a_tagged_step_tags_every_task_it_runs():
    """Tags on an include tag only the include: without ``apply`` the step's own tasks would not run under
    ``--tags <step>`` (``--tags preflight`` ran nothing but the include before)."""
    for task in tasks(load(TASKS / "main.yml")):
        include = task.get("ansible.builtin.include_tasks") or task.get("ansible.builtin.include_role")
        tags = task.get("tags")
        if not include or not tags or tags == ["always"] and task["name"].startswith("Say how"):
            continue
        assert isinstance(include, dict) and include.get("apply", {}).get("tags") == tags, task["name"]


def test_the_switch_refuses_a_run_that_skipped_a_step_before_it():
    main = load(TASKS / "main.yml")
    recorded = [t["ansible.builtin.set_fact"]["cutover_steps_run"] for t in main
                if "cutover_steps_run" in t.get("ansible.builtin.set_fact", {})]
    steps = {step for text in recorded for step in ("preflight", "privileges", "reverse_sync", "online_preflight",
                                                       "backup") if "'%s'" % step in text}
    assert steps == {"preflight", "privileges", "reverse_sync", "online_preflight", "backup"}
    names = [t["name"] for t in main]
    guard = names.index("Every step before the switch ran in this run (no --tags or --skip-tags left one out)")
    assert guard < names.index("The write freeze") and guard < names.index(
        "Online - no write freeze; old and new pods serve together")
    assert main[guard]["tags"] == ["switch"]
