"""The README is the user's manual: it must name every setting the server accepts."""

from __future__ import annotations

import os
import re

from support import ROOT

from qactuar.config import settings_doc


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_every_setting_has_a_row_in_the_readme():
    text = readme()
    missing = [name for name, _, _ in settings_doc() if f"| `{name}` |" not in text]
    assert missing == []


def test_readme_rows_name_only_real_settings():
    names = {name for name, _, _ in settings_doc()}
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", readme(), re.MULTILINE))
    signals = {row for row in rows if row.startswith("SIG")}  # the prefork signal table
    assert rows - signals - names == set()


def test_readme_opens_with_the_two_commands_ci_runs():
    text = readme()
    assert "    make run\n" in text and "    make test\n" in text
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = fh.read()
    # CI runs `make run` from a clean clone (and stops it), then `make test`
    assert "scripts/check-first-run" in ci
    assert ci.strip().endswith("make test")
    with open(os.path.join(ROOT, "scripts", "check-first-run"), encoding="utf-8") as fh:
        assert '["make", "run"]' in fh.read()


def test_make_run_brings_the_examples_dependencies_and_pip_install_does_not():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    required = setup["options"]["install_requires"]
    extras = setup["options.extras_require"]
    assert "tonberry" not in required  # `pip install qactuar` pulls no example-only package
    assert "tonberry" in extras["examples"] and "tonberry" in extras["test"]
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as fh:
        makefile = fh.read()
    assert "scripts/venv examples" in makefile
    with open(os.path.join(ROOT, ".gitignore"), encoding="utf-8") as fh:
        assert ".venv/" in fh.read().split()
