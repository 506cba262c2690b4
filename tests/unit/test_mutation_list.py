"""bench/mutate.py's mutations still find their text (`make mutation` is not part of `make test`: when the code
moved, nine sync mutations pointed at a file that no longer held their text, and nothing noticed)."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_mutate():
    spec = importlib.util.spec_from_file_location("carbot_mutate", REPO / "bench" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_mutation_finds_its_text_exactly_once():
    mutate = load_mutate()
    stale = []
    for x in mutate.MUTATIONS:
        n = (REPO / x["file"]).read_text(encoding="utf-8").count(x["old"])
        if n != 1:
            stale.append("%s: %d times in %s" % (x["name"], n, x["file"]))
    assert not stale, stale


def test_every_mutation_names_test_files_that_exist():
    mutate = load_mutate()
    missing = sorted({t for x in mutate.MUTATIONS for t in x["tests"] if not (REPO / t).is_file()})
    assert not missing, missing
