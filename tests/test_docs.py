"""The documentation's promises: every flag has a help text (the CLI reference is generated from
them), the README stays a front door, and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.cli import IGNORED_REFERENCE_FLAGS, build_parser

ROOT = Path(__file__).resolve().parents[1]


def load_cli_reference():
    """docs/hooks/cli_reference.py, the MkDocs hook that writes the CLI reference (not a package)."""
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli_reference = load_cli_reference()


def every_flag():
    """(command path, action) for every argument of every subcommand, nested ones included."""
    for path, parser, _ in cli_reference.walk(build_parser()):
        for action in cli_reference.flag_actions(parser):
            yield " ".join(path), parser, action


def test_every_flag_has_a_help_text():
    missing, hidden = [], []
    for command, parser, action in every_flag():
        name = action.option_strings[0] if action.option_strings else action.dest
        if action.help is argparse.SUPPRESS:
            # Hidden on purpose only for the reference's flags that are accepted and have no effect.
            if name not in IGNORED_REFERENCE_FLAGS:
                hidden.append(f"{command} {name}")
            continue
        # add_dataclass_flags appends "(default: X)" to a help that may be empty: that is not a help.
        text = cli_reference.help_text(parser, action, cli_reference.field_defaults()).strip()
        if not text or text.startswith("(default"):
            missing.append(f"{command} {name}")
    assert not missing, ("flags without a help text (dataclass fields: add them to "
                         f"cyclegan/cli/help_texts.py HELP): {missing}")
    assert not hidden, f"flags hidden with argparse.SUPPRESS that are not ignored reference flags: {hidden}"


def test_the_cli_reference_lists_every_subcommand_and_flag():
    page = cli_reference.render()
    for path, parser, _ in cli_reference.walk(build_parser()):
        assert f"`{' '.join(path)}`" in page, path
        for action in cli_reference.flag_actions(parser):
            if action.help is not argparse.SUPPRESS:
                assert cli_reference.invocation(parser, action).replace("|", "\\|") in page, (path, action.dest)
    assert "`cyclegan data synthetic`" in page and "`cyclegan download pretrained`" in page


def test_the_api_reference_covers_every_wing():
    """Each wing's page renders it with its submodules, so a new module appears by itself; a new wing
    needs a page."""
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "reference" / "api").glob("*.md"))
    package = ROOT / "src" / "cyclegan"
    wings = {p.stem for p in package.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and not p.stem.startswith("__"))}
    missing = sorted(w for w in wings if f"::: cyclegan.{w}\n" not in pages)
    assert not missing, f"wings without an API reference page (docs/reference/api/): {missing}"


def python_examples():
    """(file, code) of every ```python block of the README and the documentation pages."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for code in re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            yield path.relative_to(ROOT), code


def test_the_examples_import_names_that_exist():
    """The examples run against the real package: every name they import exists (a renamed function
    fails here, not in a reader's shell)."""
    examples = list(python_examples())
    assert examples
    wrong = []
    for path, code in examples:
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                wrong += [f"{path}: {node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
    assert not wrong, wrong


def test_top_level_help_is_plain_text():
    text = build_parser().format_help()
    assert "``" not in text and ":class:" not in text and ":mod:" not in text


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines (at most 200: the rest belongs in docs/)"
    first_screen = "\n".join(lines[:40])
    assert "cyclegan translate" in first_screen, "the translate command must be in the README's first 40 lines"


def test_readme_picture_is_small_and_present():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    picture = ROOT / "docs" / "assets" / "results.png"
    assert "docs/assets/results.png" in text
    assert picture.is_file() and picture.stat().st_size <= 300_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mkdocs_build_strict(tmp_path: Path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None or any(importlib.util.find_spec(m) is None for m in ("material", "mkdocstrings")):
        pytest.skip("mkdocs / mkdocstrings are not installed (pip install -e '.[docs]')")
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()

