"""Rules the code keeps that no linter checks for us.

The layer contract itself is ``.importlinter`` (checked by ``.ci/lint_imports.py``); these are
the rules beside it, read from the sources with :mod:`ast`:

- no private name crosses a module boundary: ``from a import _b`` only inside ``a``, and a
  private module ``pkg._mod`` (a Cython extension) only from inside ``pkg``;
- code does not cite documents that are not in the repository.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Folder in the repository -> its import name (the package-dir mapping of pyproject.toml).
PACKAGES = {"streamface": "streamface", "engine": "streamface.engine", "kernels": "streamface.kernels"}
OUTSIDE_DOCUMENTS = ("SEED_NOTES", "SEED_README", "DESIGN.md")


def _sources():
    for folder, name in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join([name, *parts]), path.name == "__init__.py"


def _private_part(dotted: str) -> str | None:
    """The dotted prefix that owns the first private part of ``dotted`` (None if all public)."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(module: str, owner: str) -> bool:
    return module == owner or module.startswith(owner + ".")


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """``line: name`` for each import in ``source`` (the code of ``module``) of a private name
    owned by another module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            names = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            owner = _private_part(name)
            if owner is not None and owner.startswith("streamface") and not _inside(module, owner):
                found.append(f"{node.lineno}: {name}")
    return found


def test_no_private_name_is_imported_from_another_module():
    found = [f"{path.relative_to(REPO)}:{hit}" for path, module, is_package in _sources()
             for hit in private_imports(path.read_text(), module, is_package)]
    assert found == []


def test_the_rule_finds_a_private_import_across_modules():
    source = ("from streamface.ingest.multi_stream import _Timed\n"
              "from streamface.kernels import _hri\n"
              "import streamface.kernels._quality\n"
              "from streamface.store import names\n"
              "from ._validate import check\n")
    assert private_imports(source, "streamface.ingest.run") == [
        "1: streamface.ingest.multi_stream._Timed", "2: streamface.kernels._hri", "3: streamface.kernels._quality"]
    # A kernel wrapper reading its own package's extension and helpers is inside the owner.
    assert private_imports(source, "streamface.kernels.quality") == ["1: streamface.ingest.multi_stream._Timed"]


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_code_cites_only_documents_in_the_repository(folder):
    cited = [f"{path.relative_to(REPO)}: {word}"
             for path in sorted((REPO / folder).rglob("*"))
             if path.suffix in (".py", ".pyx") for word in OUTSIDE_DOCUMENTS if word in path.read_text()]
    assert cited == []


def test_every_module_of_the_package_has_its_place_in_the_layer_contract():
    """A module left out of ``.importlinter``'s layers would be checked by nothing."""
    contract = (REPO / ".importlinter").read_text()
    named = set(re.findall(r"\bstreamface(?:\.\w+)?", contract))
    modules = {f"streamface.{p.stem}" for p in (REPO / "streamface").glob("*.py") if p.stem != "__init__"}
    packages = {f"streamface.{p.parent.name}" for p in (REPO / "streamface").glob("*/__init__.py")}
    missing = sorted((modules | packages | {"streamface.engine", "streamface.kernels"}) - named)
    assert missing == []


#: The stream stages and runs a command gets from :mod:`streamface.ingest.options`, never builds
#: itself: a command parses, calls and prints. (The later stages, FaceClustering and the
#: evaluations, take their parameters as they are and are called directly: the seed's API.)
STAGE_CLASSES = ("StreamCapture", "FaceExtraction", "FaceAnalysis", "Pipeline", "Ingest", "RayIngest")


def stage_constructions(source: str) -> list[str]:
    """``line: Class`` for each call of a stage class in ``source``, and for each attribute
    assigned on an object that is not the module's own (``stage.input_dir = ...``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in STAGE_CLASSES:
                found.append(f"{node.lineno}: {name}")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                        and target.value.id not in ("self", "bar", "ctx"):  # a bar's display, click's ctx.obj
                    found.append(f"{node.lineno}: {target.value.id}.{target.attr} =")
    return sorted(found, key=lambda hit: int(hit.partition(":")[0]))


def test_commands_build_no_stage_and_change_no_object_from_outside():
    found = [f"{path.relative_to(REPO)}:{hit}" for path in sorted((REPO / "streamface" / "cli").glob("*.py"))
             for hit in stage_constructions(path.read_text())]
    assert found == []


def test_the_command_rule_finds_a_stage_built_and_an_object_patched():
    source = ("stage = FaceExtraction(None, None)\n"
              "stage.input_dir = 'photos'\n"
              "job = options.build_ingest(specs)\n"
              "bar.total = 3\n")
    assert stage_constructions(source) == ["1: FaceExtraction", "2: stage.input_dir ="]
