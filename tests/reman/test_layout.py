"""The architecture holds: import layers (import-linter), exception trees, one home per helper."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("edge", "gateway", "vision", "reman")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ERROR_MODULES = (
    "edge.errors",
    "edge.contract.errors",
    "gateway.errors",
    "vision.errors",
    "reman.errors",
)


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # The config is root's pyproject.toml, found from cwd: import-linter 2.15 (the last for
        # Python 3.10) takes it only as --config, 2.17 deprecates that for a positional path.
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_tree(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_layers_hold_on_the_tree():
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    "module,wrong_import,contract",
    [
        ("edge/ids.py", "import gateway.store", "reman composes gateway and edge"),
        (
            "gateway/live.py",
            "import edge.journal.journal",
            "the gateway imports only edge.contract",
        ),
        ("edge/contract/table.py", "import edge.events", "the contract imports nothing"),
        ("vision/severity.py", "import edge.contract", "reman composes gateway and edge"),
        ("edge/journal/outbox.py", "import edge.station.loop", "the parts of edge import one way"),
        ("gateway/store.py", "import gateway.pages", "no import cycles"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, wrong_import, contract):
    root = _copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{wrong_import}  # deliberately the wrong way\n")
    done = _lint_imports(root)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout


def test_edge_never_imports_the_gateway():
    wrong = [
        f"{path.relative_to(REPO)}:{n}"
        for path in (REPO / "edge").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(import gateway|from gateway)\b", line)
    ]
    assert wrong == []


# ---------------------------------------------------------------- exception trees


def _drawn_names(module) -> list[str]:
    """Class names in the tree drawn in the module docstring: the first block after its title."""
    blocks = (module.__doc__ or "").split("\n\n")
    tree = blocks[1] if len(blocks) > 1 else ""
    names = []
    for line in tree.splitlines():
        match = re.match(r"^[\s│├└─]*([A-Z][A-Za-z]+)\b", line)
        if match:
            names.append(match.group(1))
    return names


def _all_modules(package: str):
    pkg = importlib.import_module(package)
    yield pkg
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("name", ERROR_MODULES)
def test_every_exception_class_is_drawn_and_every_drawn_class_exists(name):
    module = importlib.import_module(name)
    drawn = _drawn_names(module)
    defined = {
        cls.__name__
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == module.__name__
    }
    assert defined, f"{name} defines no exception"
    missing = defined - set(drawn)
    assert not missing, f"{name}: classes not in the drawing: {sorted(missing)}"
    unknown = [n for n in drawn if not inspect.isclass(getattr(module, n, None))]
    assert not unknown, f"{name}: the drawing names classes that do not exist: {unknown}"


@pytest.mark.parametrize("name", ERROR_MODULES)
def test_the_drawing_shows_each_class_under_its_base(name):
    module = importlib.import_module(name)
    stack: list[tuple[int, str]] = []
    for line in (module.__doc__ or "").splitlines():
        match = re.match(r"^([\s│├└─]*)([A-Z][A-Za-z]+)\b", line)
        if not match or not inspect.isclass(getattr(module, match.group(2), None)):
            continue
        depth, cls = len(match.group(1)), getattr(module, match.group(2))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parent = getattr(module, stack[-1][1])
            assert issubclass(cls, parent), (
                f"{name}: {cls.__name__} is drawn under {parent.__name__}"
            )
        stack.append((depth, cls.__name__))


@pytest.mark.parametrize("package", PACKAGES)
def test_exceptions_live_in_their_packages_errors_module(package):
    strays = [
        f"{module.__name__}.{cls.__name__}"
        for module in _all_modules(package)
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == module.__name__
        and not module.__name__.endswith("errors")
    ]
    assert strays == []


def test_classes_that_nothing_raises_are_gone():
    sources = "\n".join(p.read_text() for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))
    unused = []
    for name in ERROR_MODULES:
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, BaseException)):
                continue
            if cls.__module__ != module.__name__:
                continue
            used = re.search(
                rf"raise {cls.__name__}\b|\({cls.__name__}\)|{cls.__name__}\(", sources
            )
            subclassed = any(
                c is not cls and issubclass(c, cls)
                for c in vars(module).values()
                if inspect.isclass(c)
            )
            if not used and not subclassed:
                unused.append(f"{name}.{cls.__name__}")
    assert unused == []


# ---------------------------------------------------------------- plumbing once


def _definitions(pattern: str) -> list[str]:
    found = []
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(pattern, line):
                    found.append(f"{path.relative_to(REPO)}:{n}")
    return found


@pytest.mark.parametrize(
    "what,pattern",
    [
        ("paho client", r".*\bpaho\.Client\("),
        ("TLS set-up", r".*\.tls_set(_context)?\("),
        ("time formatter", r".*isoformat\(timespec=\"milliseconds\"\)"),
        ("CSV columns", r"^CSV_COLUMNS\s*=\s*\("),
        ("defect types", r"^DEFECT_TYPES\b.*=\s*\("),
        ("free port", r"^def free_port\("),
        ("JSON payload parser", r".*json\.loads\(payload"),
    ],
)
def test_plumbing_is_written_once(what, pattern):
    places = _definitions(pattern)
    files = {place.split(":")[0] for place in places}
    assert len(files) == 1, f"{what} in {len(files)} files: {places}"
