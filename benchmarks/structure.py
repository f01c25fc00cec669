"""The package's structure, measured from its source: modules, lines, the import graph's depth and
cycles, and the places an option is written.

Usage: python -m benchmarks.structure [--src DIR] [--option NAME ...]

- modules and lines: every `.py` file under `DIR/adownload` (default: this checkout's `src`);
- depth: the longest chain of imports that run (module level, and inside functions), a cycle
  counted as one step; imports under `if TYPE_CHECKING:` do not run and are left out;
- cycles: groups of modules that import each other, directly or not (the same imports);
- places: where an option is written: a parameter, a field, a keyword passed, an assignment or
  a dict key of that name (its name followed by `:` or `=`, or the string `"name":`).

Give `--src` another checkout's `src` (a `git worktree` of an older commit) for "before".
"""

from __future__ import annotations

import argparse
import ast
import collections
import io
import sys
import tokenize
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OPTIONS = ("proxy", "max_redirects", "checksum")


def modules_of(src: Path) -> dict[str, Path]:
    root = src / "adownload"
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(src).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path], *, top_only: bool) -> set[str]:
    """The package's modules that `name` imports (those that run)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    nodes = tree.body if top_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from package import module` imports the module; `from module import name`, the
            # module (a package's own `__init__` runs first either way, and is not counted).
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [module for module in submodules if module in known] or [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(src: Path, *, top_only: bool) -> tuple[int, list[str], list[list[str]]]:
    """(depth, the deepest chain, the cycles) of the import graph."""
    known = modules_of(src)
    edges = {name: imports_of(name, path, known, top_only=top_only) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def strong(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in known:
        if node not in index:
            strong(node)
    group_of = {member: number for number, group in enumerate(groups) for member in group}
    depths: dict[str, int] = {}

    def depth(node: str) -> int:
        if node not in depths:
            depths[node] = 0
            depths[node] = max(
                (1 + depth(other) for other in edges[node] if group_of[other] != group_of[node]),
                default=0,
            )
        return depths[node]

    deepest = max(known, key=depth)
    chain = [deepest]
    while True:
        node = chain[-1]
        below = sorted(
            other
            for other in edges[node]
            if group_of[other] != group_of[node] and depth(other) == depth(node) - 1
        )
        if not below:
            break
        chain.append(below[0])
    return depth(deepest), chain, [sorted(group) for group in groups if len(group) > 1]


def places(src: Path, option: str) -> list[str]:
    found: list[str] = []
    for path in sorted((src / "adownload").rglob("*.py")):
        tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
        for before, token, after in zip(tokens, tokens[1:], tokens[2:], strict=False):
            named = token.type == tokenize.NAME and token.string == option
            keyed = token.type == tokenize.STRING and token.string.strip("\"'") == option
            if (named and after.string in (":", "=") and before.string != ".") or (
                keyed and after.string == ":"
            ):
                found.append(f"{path.relative_to(src / 'adownload')}:{token.start[0]}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=HERE.parent / "src")
    parser.add_argument("--option", action="append", help="an option to find (repeatable)")
    args = parser.parse_args(argv)
    known = modules_of(args.src)
    lines = sum(len(path.read_text().splitlines()) for path in known.values())
    packages = sum(1 for path in known.values() if path.name == "__init__.py")
    largest = sorted(known.items(), key=lambda item: -len(item[1].read_text().splitlines()))[:5]
    print(f"modules: {len(known)} in {packages} packages, {lines} lines")
    print(
        "largest: "
        + ", ".join(f"{name} {len(path.read_text().splitlines())}" for name, path in largest)
    )
    for top_only, what in ((True, "module-level imports"), (False, "every import that runs")):
        depth, chain, cycles = graph(args.src, top_only=top_only)
        print(f"{what}: depth {depth}, {len(cycles)} cycle(s)")
        for cycle in cycles:
            print("  cycle: " + " <-> ".join(cycle))
        print("  deepest: " + " -> ".join(chain))
    for option in args.option or DEFAULT_OPTIONS:
        found = places(args.src, option)
        files = collections.Counter(place.split(":")[0] for place in found)
        print(f"{option}: {len(found)} places in {len(files)} files")
        for file, count in sorted(files.items()):
            print(f"  {file}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
