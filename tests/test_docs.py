"""README.md and docs/: a short landing page, valid links, every setting documented.

Pure file checks (no server, no import of the dashboard): the README stays under 12 KB and
names the Makefile's test command, every relative link in README.md and docs/*.md reaches a
file (and a heading, for ``#anchor``, by GitHub's slug rules), and every setting the code
reads appears in docs/configuration.md.

The settings are found in the source itself, by scanning every ``.py`` file under
``dashboard/`` (wherever modules move): key paths written as tuples (``(*DB, "MaxImportBytes")``
with ``DB = ("Dashboard",)``, ``("Mesh", "Service", "ServiceName")``), paths completed by a
helper's string argument (``_storage_url(reader, "SessionStorage", ...)`` where the helper
builds ``(*DB, name)``), environment-style names in string literals
(``"Dashboard__TrustedAuthHeader"``) and environment variables read by name
(``os.environ.get(MULTIPROC_ENV)``). A loop index in a path is ``N`` in the docs
(``Dashboard__Users__N__Name``); a path continued by data is any name
(``Dashboard__TrustedAuthRoles__<group>``).
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PACKAGE = ROOT / "dashboard"
README_LIMIT = 12 * 1024

#: the first segment of a setting's key path, as the code spells it
SETTING_ROOTS = ("Mesh", "Dashboard")
#: CGI/WSGI request variables (PEP 3333): read from a request's ``environ``, not settings
_WSGI_NAMES = {"PATH_INFO", "SCRIPT_NAME", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE",
               "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
               "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_USER", "REQUEST_URI", "RAW_URI"}


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# --------------------------------------------------------------------------- the README


def test_the_readme_is_a_landing_page_under_12_kb():
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT}"


def test_the_readme_names_the_makefiles_test_and_demo_commands():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, re.MULTILINE))
    assert {"test", "demo"} <= targets, "the Makefile lost its test or demo target"
    blocks = "\n".join(re.findall(r"```[^\n]*\n(.*?)```", README.read_text(), re.DOTALL))
    # as commands in a code block, one per line, which is what CI (.ci/run) runs
    for command in ("make test", "make demo"):
        assert re.search(rf"^\s*{command}(\s|$)", blocks, re.MULTILINE), \
            f"README.md does not show `{command}` in a code block"
    ci = ROOT / ".ci" / "run"
    if ci.exists():
        assert re.search(r"^\s*make test\s*$", ci.read_text(), re.MULTILINE), \
            ".ci/run no longer runs `make test`, which README.md names as the test command"


def test_the_docs_pages_the_readme_promises_exist():
    for name in ("configuration", "deployment", "operations", "stores", "architecture",
                 "development"):
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"


# --------------------------------------------------------------------------- links


_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
#: [text](target) and ![alt](target), with an optional "title"
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
#: [label]: target (reference definitions)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where links are not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _links(path: Path) -> list[str]:
    prose = _prose(path.read_text())
    return _LINK.findall(prose) + _REFERENCE.findall(prose)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower-cased, without
    punctuation (letters, digits, ``_``, ``-`` and spaces stay), spaces turned to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)(.+?)\1", r"\2", text)  # emphasis markers
    text = text.strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's ``-1``, ``-2`` for repeats."""
    text = _FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    found: set[str] = set()
    for match in re.finditer(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", text, re.MULTILINE):
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    # explicit anchors: <a id="..."> / <a name="...">
    found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    return found


def test_the_slug_rules_match_githubs():
    assert github_slug("Index drift (`/index`) and repair") == "index-drift-index-and-repair"
    assert github_slug("Sessions and login") == "sessions-and-login"
    assert github_slug("`Dashboard__MaxImportBytes`: the limit") == "dashboard__maximportbytes-the-limit"
    assert github_slug("Export and import (`/export`, `/import`)") == "export-and-import-export-import"
    assert github_slug("ToskaStore 0.8, v0.9.1 and main") == "toskastore-08-v091-and-main"
    assert github_slug("**Bold** and [a link](x.md)") == "bold-and-a-link"


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_a_heading(page):
    assert page.exists()
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        file_part, _, anchor = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_links_and_skips_code():
    sample = ("See [the guide](docs/a.md#b) and ![shot](docs/s.png 'x').\n"
              "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n[ref]: docs/c.md\n")
    prose = _prose(sample)
    assert _LINK.findall(prose) == ["docs/a.md#b", "docs/s.png"]
    assert _REFERENCE.findall(prose) == ["docs/c.md"]


# --------------------------------------------------------------------------- settings


INDEX = "\0N"  # a segment that is a loop index: Dashboard__Users__N__Name
OPEN = "\0*"  # the rest of the path comes from data: Dashboard__TrustedAuthRoles__<group>


@dataclass(frozen=True)
class _Param:
    """A segment taken from the enclosing function's parameter ``name``."""

    function: str
    name: str


Segment = str | _Param


@dataclass
class _Module:
    path: Path
    tree: ast.Module
    tuples: dict[str, list[ast.expr]]
    strings: dict[str, str]


def _parse_package() -> list[_Module]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        tuples: dict[str, list[ast.expr]] = {}
        strings: dict[str, str] = {}
        for node in tree.body:
            for target, value in _assignments(node):
                if isinstance(value, ast.Tuple):
                    tuples.setdefault(target, []).append(value)
                elif isinstance(value, ast.Constant) and isinstance(value.value, str):
                    strings[target] = value.value
        modules.append(_Module(path, tree, tuples, strings))
    return modules


def _assignments(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
        yield node.target.id, node.value


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = function.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)] + \
        [a.arg for a in (args.vararg, args.kwarg) if a is not None]


class _Resolver:
    """Resolves tuple expressions to key paths: locals, then the module, then any module."""

    def __init__(self, modules: list[_Module]) -> None:
        self.modules = modules
        self.global_tuples: dict[str, list[ast.expr]] = {}
        self.global_strings: dict[str, str] = {}
        for module in modules:
            for name, values in module.tuples.items():
                self.global_tuples.setdefault(name, []).extend(values)
            self.global_strings.update(module.strings)

    def paths(self, node: ast.Tuple, module: _Module, scope: dict[str, list[ast.expr]],
              function: ast.FunctionDef | ast.AsyncFunctionDef | None,
              depth: int = 0) -> list[tuple[Segment, ...]]:
        parameters = _parameters(function) if function is not None else []
        choices: list[list[tuple[Segment, ...]]] = []
        for element in node.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                choices.append([(element.value,)])
            elif isinstance(element, ast.Starred):
                choices.append(self._splat(element.value, module, scope, function, depth))
            elif isinstance(element, ast.Name) and element.id in parameters and function is not None:
                choices.append([(_Param(function.name, element.id),)])
            elif isinstance(element, ast.Name) and element.id in module.strings:
                choices.append([(module.strings[element.id],)])
            else:
                choices.append([(INDEX,)])
        return [tuple(s for part in combo for s in part) for combo in product(*choices)]

    def _splat(self, value: ast.expr, module: _Module, scope: dict[str, list[ast.expr]],
               function: ast.FunctionDef | ast.AsyncFunctionDef | None,
               depth: int) -> list[tuple[Segment, ...]]:
        if depth > 8 or not isinstance(value, ast.Name):
            return [(OPEN,)]
        if value.id in scope:
            candidates, local = scope[value.id], True
        else:
            candidates = module.tuples.get(value.id) or self.global_tuples.get(value.id, [])
            local = False
        found = []
        for candidate in candidates:
            if isinstance(candidate, ast.Tuple):
                found += self.paths(candidate, module, scope if local else {},
                                    function if local else None, depth + 1)
        return found or [(OPEN,)]


def _local_tuples(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, list[ast.expr]]:
    scope: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        for target, value in _assignments(node):
            if isinstance(value, ast.Tuple):
                scope.setdefault(target, []).append(value)
    return scope


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, or a mapping named ``environ``/``env`` (an environment parameter)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def _is_variable_name(name: str) -> bool:
    return (bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", name)) and name not in _WSGI_NAMES
            and not name.startswith(("HTTP_", "wsgi.")))


def settings_in_code() -> dict[str, set[str]]:
    """Every setting the code reads: ``{name: {files}}``, names in env form
    (``Dashboard__Users__N__Name``; ``<...>`` where data continues the path)."""
    modules = _parse_package()
    resolver = _Resolver(modules)
    found: dict[str, set[str]] = {}
    #: function name -> [(parameter, path template)]
    templates: dict[str, list[tuple[str, tuple[Segment, ...]]]] = {}
    signatures: dict[str, list[list[str]]] = {}

    def add(path: tuple[Segment, ...], module: _Module) -> None:
        if len(path) < 2 or path[0] not in SETTING_ROOTS:
            return
        name = "__".join("N" if s == INDEX else "<...>" if s == OPEN else str(s) for s in path)
        found.setdefault(name, set()).add(str(module.path.relative_to(ROOT)))

    for module in modules:
        scoped: set[int] = set()
        for function in _functions(module.tree):
            signatures.setdefault(function.name, []).append(_parameters(function))
            scope = _local_tuples(function)
            for node in ast.walk(function):
                if not isinstance(node, ast.Tuple) or id(node) in scoped:
                    continue
                scoped.add(id(node))
                for path in resolver.paths(node, module, scope, function):
                    params = [s for s in path if isinstance(s, _Param)]
                    if params:
                        if len(params) == 1 and path[0] in SETTING_ROOTS:
                            templates.setdefault(function.name, []).append((params[0].name, path))
                        continue
                    add(path, module)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Tuple) and id(node) not in scoped:
                for path in resolver.paths(node, module, {}, None):
                    add(path, module)

    # helpers that complete a path from a parameter: their calls with a string literal
    for module in modules:
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else None
            if callee not in templates:
                continue
            for parameter, path in templates[callee]:
                for params in signatures.get(callee, []):
                    positional = [p for p in params if p not in ("self", "cls")]
                    argument = next((k.value for k in node.keywords if k.arg == parameter), None)
                    if argument is None and parameter in positional:
                        index = positional.index(parameter)
                        if index < len(node.args):
                            argument = node.args[index]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        add(tuple(argument.value if isinstance(s, _Param) else s for s in path),
                            module)

    for module in modules:
        docstrings = _docstrings(module.tree)
        for node in ast.walk(module.tree):
            # names in env form in string literals (messages name the setting to fix)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings:
                for match in re.finditer(r"(?<![A-Za-z0-9_])((?:Mesh|Dashboard)(?:__[A-Za-z0-9]+)+)",
                                         node.value):
                    add(tuple(INDEX if s.isdigit() else s for s in match.group(1).split("__")),
                        module)
            # environment variables read by name: os.environ.get(X), environ[X], os.getenv(X)
            argument = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and (
                        func.attr in ("get", "pop") and _is_environ(func.value) or func.attr == "getenv"):
                    argument = node.args[0]
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                    and _is_environ(node.value):
                argument = node.slice
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                name = argument.value
            elif isinstance(argument, ast.Name):
                name = module.strings.get(argument.id) or resolver.global_strings.get(argument.id, "")
            else:
                continue
            if _is_variable_name(name):
                found.setdefault(name, set()).add(str(module.path.relative_to(ROOT)))
    return found


def _documented(name: str, text: str) -> bool:
    pattern = "__".join(
        r"(?:N|[0-9]+|<[^>\s`]+>)" if segment == "N" else
        r"[^\s`|]+" if segment == "<...>" else re.escape(segment)
        for segment in name.split("__"))
    return re.search(rf"(?<![A-Za-z0-9_]){pattern}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


SETTINGS = settings_in_code()


def test_the_scan_finds_the_settings_however_the_code_reads_them():
    # one of each way of reading a setting: if these vanish, the scan (not the docs) broke
    expected = {
        "Dashboard__MaxImportBytes",  # (*DB, "MaxImportBytes")
        "Mesh__KeyValue__ToskaStore__AuthToken",  # (*TS, ...) with TS = (*KV, "ToskaStore")
        "Mesh__KeyValue__Redis__ConnectionString",  # a module constant path
        "Mesh__Service__ServiceName",  # a literal path
        "Dashboard__Users__N__PasswordHash",  # (*base, ...) with a loop index in base
        "Dashboard__SessionStorage",  # a helper building (*DB, name) called with a literal
        "Dashboard__TrustedAuthHeader",
        "PROMETHEUS_MULTIPROC_DIR",  # os.environ.get(MULTIPROC_ENV)
        "DASHBOARD_APPSETTINGS",  # environ.get(APPSETTINGS_ENV)
    }
    missing = expected - set(SETTINGS)
    assert not missing, f"the scan of dashboard/ no longer finds {sorted(missing)}"
    assert not {name for name in SETTINGS if name.upper() in _WSGI_NAMES}


def test_every_setting_the_code_reads_is_in_the_configuration_reference():
    text = CONFIGURATION.read_text()
    missing = {name: sorted(files) for name, files in SETTINGS.items() if not _documented(name, text)}
    assert not missing, "settings read by the code but not in docs/configuration.md: " + \
        "; ".join(f"{name} ({', '.join(files)})" for name, files in sorted(missing.items()))


def test_the_setting_match_takes_indexes_and_groups():
    assert _documented("Dashboard__Users__N__Name", "`Dashboard__Users__N__Name`")
    assert _documented("Dashboard__Users__N__Name", "`Dashboard__Users__0__Name`")
    assert _documented("Dashboard__TrustedAuthRoles__<...>", "`Dashboard__TrustedAuthRoles__<group>`")
    assert not _documented("Dashboard__Session", "`Dashboard__SessionStorage`")
    assert not _documented("Dashboard__Demo", "`XDashboard__Demo`")


def test_the_images_own_variables_are_in_the_configuration_reference():
    dockerfile = (ROOT / "Dockerfile").read_text()
    names = set(re.findall(r"\$\{(\w+)", dockerfile))
    text = CONFIGURATION.read_text()
    assert names, "the Dockerfile's command reads no ${VARIABLE} any more: update this test"
    assert not {name for name in names if not _documented(name, text)}
