"""The collection tarball ships what an operator needs and nothing of the rehearsal or the tests.

Builds the collection the way a release does (``ansible-galaxy collection build``, galaxy.yml's build_ignore)
into a temporary directory and reads the tarball's member list.
"""

import pathlib
import re
import subprocess
import sys
import tarfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

# The steps ops run (README.md, "Steps ops run") and the task files the cutover and rollback include.
OPERATOR_PLAYBOOKS = ("assess", "backup", "prepare", "migrate", "validate", "performance", "gdpr", "cutover",
                      "rollback", "cleanup")
# Never in the tarball: the development tree and everything that exists only for a rehearsal or a test.
FORBIDDEN_TOP = ("tests/", "bench/", "molecule/", "rehearsal/", ".collections/", ".config/", "scripts/", ".ci/",
                 "reports/", ".venv/")
# The rehearsal collection's parts (rehearsal/, carbot.rehearsal) under any name they ever had here.
FORBIDDEN_ANYWHERE = re.compile(r"standin|local_service|local_load|daemon\.py|local_postgres|local_cluster|legacy_db"
                                r"|legacy_data|legacy_generate|sql/legacy/generate\.sql|rehearsal|__pycache__|\.pyc$")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    ansible_galaxy = pathlib.Path(sys.executable).parent / "ansible-galaxy"
    done = subprocess.run([str(ansible_galaxy), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tarballs = list(out.glob("carbot-migration-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        names = {m.name[2:] if m.name.startswith("./") else m.name: m for m in tar.getmembers()}
        texts = {n: tar.extractfile(m).read().decode("utf-8", "replace") for n, m in names.items()
                 if m.isfile() and n.endswith((".yml", ".yaml", ".py", ".j2"))}
    return set(names), texts


def test_no_tests_bench_or_rehearsal_parts(members):
    names, _texts = members
    leaked = sorted(n for n in names if n.startswith(FORBIDDEN_TOP) or n.rstrip("/") in
                    {p.rstrip("/") for p in FORBIDDEN_TOP} or FORBIDDEN_ANYWHERE.search(n))
    assert leaked == []


def test_every_module_role_and_playbook_an_operator_needs(members):
    names, _texts = members
    for path in sorted((REPO / "plugins").rglob("*.py")):
        if "__pycache__" not in path.parts:
            assert str(path.relative_to(REPO)) in names
    for role in sorted(p for p in (REPO / "roles").iterdir() if p.is_dir()):
        for path in role.rglob("*"):
            if path.is_file():
                assert str(path.relative_to(REPO)) in names
    for path in sorted((REPO / "playbooks").rglob("*.yml")):
        assert str(path.relative_to(REPO)) in names
    for step in OPERATOR_PLAYBOOKS:
        assert "playbooks/%s.yml" % step in names
    for path in sorted((REPO / "sql").rglob("*.sql")):
        if path.name != "generate.sql":  # the rehearsal's synthetic legacy data (carbot.rehearsal.legacy_db)
            assert str(path.relative_to(REPO)) in names
    for needed in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "README.md", "docs/architecture.md",
                   "inventories/production/group_vars/all/main.yml", "inventories/staging/group_vars/all/main.yml"):
        assert needed in names, needed


def test_what_ships_refers_only_to_what_ships(members):
    """Every carbot.migration.<name> a shipped file uses is a shipped module, role, playbook or plugin; nothing
    shipped uses the rehearsal collection or the tests."""
    names, texts = members
    provided = set()
    for name in names:
        parts = name.split("/")
        if name.startswith("plugins/") and len(parts) == 3 and parts[2].endswith(".py"):
            provided.add(parts[2][:-3])
        elif name.startswith("roles/") and len(parts) >= 2 and parts[1]:
            provided.add(parts[1])
        elif name.startswith("playbooks/") and len(parts) == 2 and name.endswith(".yml"):
            provided.add(parts[1][:-4])
    provided.update({"db", "all"})  # the action groups of meta/runtime.yml
    missing, rehearsal = set(), []
    for name, text in texts.items():
        for used in re.findall(r"carbot\.migration\.([a-z0-9_]+)", text):
            if used not in provided and used not in ("plugins",):
                missing.add((name, used))
        if re.search(r"carbot\.rehearsal\.|tests\.standins|tests/load/", text):
            rehearsal.append(name)
    assert sorted(missing) == []
    assert rehearsal == []
