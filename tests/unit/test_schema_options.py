"""The schema options are said once (issue 16): one argument-spec helper, one doc fragment, one set of defaults.

Every module of carbot.migration that takes ``legacy_schema``, ``target_schema`` or ``mapping_schema`` builds it
with ``module_utils/schemas.schema_argument_spec()`` and documents it with the doc fragment
``carbot.migration.schemas`` (a module may add its own description, nothing else). A hand-written copy of one of
these options, in a spec or in a module's DOCUMENTATION, or a schema name restated as a Python literal anywhere in
plugins/, fails here.
"""

import ast
import importlib
import pathlib
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.carbot.migration.plugins.doc_fragments.schemas import ModuleDocFragment  # noqa: E402
from ansible_collections.carbot.migration.plugins.module_utils import common, job_progress, schemas  # noqa: E402

PLUGINS = REPO / "plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__")
OPTIONS = tuple(schemas.DEFAULTS)
FRAGMENT = "carbot.migration.schemas"
SHORT = {"legacy_schema": "legacy", "target_schema": "target", "mapping_schema": "mapping"}


class _Spec(Exception):
    def __init__(self, argument_spec):
        super().__init__("captured")
        self.argument_spec = argument_spec


def _raise_spec(argument_spec=None, **_kwargs):
    raise _Spec(argument_spec)


def argument_spec_of(name, monkeypatch):
    """The argument spec the module hands to AnsibleModule (main() stops right there), itself or through
    module_utils/common.database_module (database modules) or job_progress.action_only (the followers)."""
    module = importlib.import_module("ansible_collections.carbot.migration.plugins.modules.%s" % name)
    monkeypatch.setattr(common, "AnsibleModule", _raise_spec)
    monkeypatch.setattr(job_progress, "AnsibleModule", _raise_spec)
    if hasattr(module, "AnsibleModule"):
        monkeypatch.setattr(module, "AnsibleModule", _raise_spec)
    with pytest.raises(_Spec) as captured:
        module.main()
    return captured.value.argument_spec


def documentation_of(name):
    tree = ast.parse((PLUGINS / "modules" / ("%s.py" % name)).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no DOCUMENTATION" % name)


def fragment_options(extends):
    """Options the schema fragments named in ``extends`` document."""
    out = {}
    for ref in extends:
        if ref == FRAGMENT:
            out.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
        elif ref.startswith(FRAGMENT + "."):
            out.update(yaml.safe_load(getattr(ModuleDocFragment, ref.rsplit(".", 1)[1].upper()))["options"])
    return out


def test_helper_defaults_and_fragment_agree():
    assert schemas.schema_argument_spec() == {
        "target_schema": {"type": "str", "default": "carbot_v2"},
        "mapping_schema": {"type": "str", "default": "carbot_migration"},
        "legacy_schema": {"type": "str", "default": "public"},
    }
    full = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(full) == set(OPTIONS)
    for option, default in schemas.DEFAULTS.items():
        part = yaml.safe_load(getattr(ModuleDocFragment, SHORT[option].upper()))["options"]
        assert part == {option: full[option]}
        assert (full[option]["type"], full[option]["default"]) == ("str", default)
    a, b = schemas.schema_argument_spec("legacy_schema"), schemas.schema_argument_spec("legacy_schema")
    assert a == b and a["legacy_schema"] is not b["legacy_schema"]  # fresh dicts: a module may change its copy
    with pytest.raises(ValueError):
        schemas.schema_argument_spec("legacy")


@pytest.mark.parametrize("name", MODULES)
def test_module_takes_schema_options_from_the_helper_and_the_fragment(name, monkeypatch):
    spec = argument_spec_of(name, monkeypatch)
    taken = [o for o in OPTIONS if o in spec]
    for option in taken:
        assert spec[option] == schemas.schema_argument_spec(option)[option], (name, option)
    doc = documentation_of(name)
    extends = doc.get("extends_documentation_fragment") or []
    documented = fragment_options(extends)
    assert sorted(documented) == sorted(taken), (
        "%s: the schema fragments it extends (%s) must document exactly the schema options it takes (%s)"
        % (name, [e for e in extends if e.startswith(FRAGMENT)], taken))
    for option in taken:
        own = (doc.get("options") or {}).get(option)
        assert own is None or set(own) == {"description"}, (
            "%s documents %s by hand (%s): type and default come from the fragment %s"
            % (name, option, sorted(own), FRAGMENT))


def _python_files():
    return sorted(p for p in PLUGINS.rglob("*.py") if p != PLUGINS / "module_utils" / "schemas.py")


def test_no_hand_written_schema_option_in_plugins():
    """No ``legacy_schema=dict(...)`` or ``"legacy_schema": {...}``: specs use schema_argument_spec()."""
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            pairs = []
            if isinstance(node, ast.Call):
                pairs = [(k.arg, k.value) for k in node.keywords if k.arg]
            elif isinstance(node, ast.Dict):
                pairs = [(k.value, v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)]
            for key, value in pairs:
                is_spec = isinstance(value, ast.Dict) or (
                    isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict")
                if key in OPTIONS and is_spec:
                    found.append("%s:%d %s" % (path.relative_to(REPO), value.lineno, key))
    assert not found, "hand-written schema options (use schemas.schema_argument_spec): %s" % found


def test_schema_names_are_not_restated_in_plugins():
    """The default schema names appear as Python literals only in module_utils/schemas.py (docs are prose)."""
    names = set(schemas.DEFAULTS.values())
    found = ["%s:%d %r" % (path.relative_to(REPO), node.lineno, node.value)
             for path in _python_files() for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and node.value in names]
    assert not found, "use schemas.LEGACY_SCHEMA / TARGET_SCHEMA / MAPPING_SCHEMA: %s" % found
