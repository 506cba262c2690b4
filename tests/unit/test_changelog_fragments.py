"""Changelog fragments follow antsibull-changelog's format (changelogs/config.yaml sections)."""

import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_fragments_use_the_configured_sections():
    config = yaml.safe_load((REPO / "changelogs" / "config.yaml").read_text())
    sections = {name for name, _title in config["sections"]} | {config["prelude_section_name"], "trivial"}
    fragments = sorted((REPO / "changelogs" / "fragments").glob("*.yml"))
    assert fragments
    for path in fragments:
        doc = yaml.safe_load(path.read_text())
        assert isinstance(doc, dict) and doc, path
        for section, entries in doc.items():
            assert section in sections, (path.name, section)
            assert isinstance(entries, list) and all(isinstance(e, str) and e.strip() for e in entries), path.name
