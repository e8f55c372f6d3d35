"""What the docs tests read: fenced snippets of the guides, and the error and log lines the code can print."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCE = ROOT / "src" / "pum"
LANGUAGES = ("en", "ja")

# info string of a fenced block -> what loads it (tests/docs/test_snippets.py)
CONFIG_KINDS = ("pum.conf", "freshclam.conf", "proscan.conf", "apache", "nginx", "systemd", "cron")

PUM_ERRORS = {"PumError", "ConfigError", "UpstreamError", "VerifyError", "StoreError", "LockHeld"}

_FENCE = re.compile(r"^(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Snippet:
    kind: str  # the fenced block's info string, e.g. "pum.conf"
    text: str
    file: Path
    line: int  # of the opening fence

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def guide_files(language: str) -> list[Path]:
    return sorted((DOCS / language).glob("*.md"))


def fenced_blocks(path: Path) -> list[Snippet]:
    """Every fenced code block of a Markdown file, in order, with its info string."""
    blocks: list[Snippet] = []
    opened: tuple[str, str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if opened is None:
            match = _FENCE.match(stripped)
            if match:
                opened = (match["fence"], match["info"].strip(), number)
                body = []
        elif stripped.startswith(opened[0]) and stripped.strip("`~") == "":
            blocks.append(Snippet(opened[1], "\n".join(body) + "\n", path, opened[2]))
            opened = None
        else:
            body.append(line)
    if opened is not None:
        raise AssertionError(f"{path}:{opened[2]}: fenced block never closed")
    return blocks


def snippets(language: str) -> list[Snippet]:
    return [block for path in guide_files(language) for block in fenced_blocks(path)]


def code_spans(path: Path) -> list[str]:
    """Inline `code` spans and the lines of every fenced block: where an error or log line is quoted."""
    text = path.read_text(encoding="utf-8")
    spans = [block_line for block in fenced_blocks(path) for block_line in block.text.splitlines()]
    without_blocks = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    spans += [m[2] for m in re.finditer(r"(`+)(.+?)\1", without_blocks)]
    return spans


# -- what the code prints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """An error or log line of the code as a pattern: literal text with `…` where a value goes."""

    template: str
    file: Path
    line: int
    kind: str  # the exception class, or "log"

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = [re.escape(part) for part in self.template.split("…")]
        return re.compile(".*?".join(parts), re.S)

    @property
    def has_words(self) -> bool:
        return bool(re.search(r"[A-Za-z]{3}", self.template.replace("…", "")))


def _template(node: ast.expr, assigned: dict[str, ast.expr], depth: int = 0) -> str | None:
    if depth > 5:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                out.append(str(value.value))
            else:
                out.append("…")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _template(node.left, assigned, depth + 1)
        right = _template(node.right, assigned, depth + 1)
        return (left if left is not None else "…") + (right if right is not None else "…")
    if isinstance(node, ast.Name) and node.id in assigned:
        return _template(assigned[node.id], assigned, depth + 1)
    return None


def _assignments(function: ast.AST) -> dict[str, ast.expr]:
    assigned: dict[str, ast.expr] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned.setdefault(node.targets[0].id, node.value)
    return assigned


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_log_call(call: ast.Call, path: Path) -> bool:
    """`log.line(...)`, `ctx.log.line(...)`, `self.log.error(...)`, and RunLog's own `self.line(...)`."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in ("line", "error"):
        return False
    owner = func.value
    name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
    return name in ("log", "run_log", "runlog") or (name == "self" and path.name == "runlog.py")


def error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """PumError and every class of src/pum derived from it (e.g. proscanup's CommandError)."""
    names = set(PUM_ERRORS)
    bases = {
        node.name: {base.id for base in node.bases if isinstance(base, ast.Name)}
        for tree in trees.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    for _ in range(len(bases)):
        grown = {name for name, parents in bases.items() if parents & names}
        if grown <= names:
            break
        names |= grown
    return names


@functools.cache
def code_messages(kinds: str = "errors") -> tuple[Message, ...]:
    """Every PumError message (`kinds="errors"`) or run-log line (`kinds="log"`) in src/pum."""
    found: list[Message] = []
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SOURCE.rglob("*.py"))}
    errors = error_classes(trees)
    for path, tree in trees.items():
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        owner: dict[int, dict[str, ast.expr]] = {}
        for function in functions:
            assigned = _assignments(function)
            for node in ast.walk(function):
                owner.setdefault(id(node), assigned)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if kinds == "errors":
                if _call_name(node) not in errors:
                    continue
                kind = _call_name(node)
            else:
                if not _is_log_call(node, path):
                    continue
                kind = "log"
            template = _template(node.args[0], owner.get(id(node), {}))
            if template is None:
                template = "…"
            found.append(Message(template, path, node.lineno, kind))
    return tuple(found)


if __name__ == "__main__":
    import sys

    for message in code_messages(sys.argv[1] if len(sys.argv) > 1 else "errors"):
        print(f"{message.where}\t{message.kind}\t{message.template}")
