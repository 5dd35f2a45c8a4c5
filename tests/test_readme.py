"""The README and the docs/ pages say things that can be checked cheaply, so they are checked.

- Every relative link, image and `#anchor` in README.md and docs/**/*.md resolves: the file
  exists and the anchor is a GitHub-style heading slug (or an HTML id) of the target page.
- Every command in the README's ```bash blocks runs as far as it can without doing the work:
  Hydra apps (train.py, fast_nst.apps.gatys, experiments, compare, calibrate, flicker) compose their
  config with `--cfg job` and exit 0; argparse apps (stylize.py, fast_nst.apps.demo,
  fast_nst.apps.serve) list every flag the command uses in their `--help` and accept its
  arguments.
- The ```bash commands of the docs/ pages compose in-process (Hydra's compose API, same config
  roots) or parse (the app's own argparse parser): cheaper, and the same mistakes show.
- `make <target>` (in bash blocks or inline code) names a target of the Makefile, and
  `VAR=...` after it a variable the Makefile uses.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fast_nst.cli import register_schemas, style_file_overrides

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
TIMEOUT = 120


@dataclass(frozen=True)
class App:
    argv: tuple[str, ...]            # how to run it from the repository root
    config: tuple[str, str] | None   # Hydra: (config dir relative to ROOT, config name)
    parser: str | None = None        # argparse: the module with build_parser()


APPS = {
    "train": App(("train.py",), ("conf", "train")),
    "gatys": App(("-m", "fast_nst.apps.gatys"), ("conf", "gatys")),
    "experiments": App(("-m", "fast_nst.apps.experiments"), ("conf", "gatys_experiments")),
    "compare": App(("-m", "fast_nst.apps.compare"), ("conf", "compare")),
    "calibrate": App(("-m", "fast_nst.apps.calibrate"), ("conf", "calibrate")),
    "flicker": App(("-m", "fast_nst.apps.flicker"), ("conf", "flicker")),
    "stylize": App(("stylize.py",), None, "fast_nst.apps.stylize"),
    "demo": App(("-m", "fast_nst.apps.demo"), None, "fast_nst.apps.demo"),
    "serve": App(("-m", "fast_nst.apps.serve"), None, "fast_nst.apps.serve"),
}
# What a command line may start with, after the Python interpreter or as a console script.
SCRIPTS = {"train.py": "train", "stylize.py": "stylize"}
MODULES = {f"fast_nst.apps.{k}": k for k in APPS}  # python -m fast_nst.apps.<app>
CONSOLE = {f"fast-nst-{k}": k for k in APPS}
PYTHONS = {"python", "python3", ".venv/bin/python"}
WRAPPERS = {"srun"}  # launchers that run the command after them unchanged


# ---------------------------------------------------------------------------------------------
# Reading Markdown


def strip_fences(text: str) -> list[str]:
    """The page's lines with fenced code blocks blanked (line numbers kept)."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"\s*(```|~~~)", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def code_blocks(text: str, lang: str = "bash") -> list[tuple[int, str]]:
    """(first line number, body) of each fenced block in `lang`."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\s*```(\w*)", lines[i])
        if m:
            start, body = i + 2, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            if m.group(1) == lang:
                blocks.append((start, "\n".join(body)))
        i += 1
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    found: list[str] = []
    seen: dict[str, int] = {}
    for line in strip_fences(page.read_text()):
        m = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.append(base if n == 0 else f"{base}-{n}")
        found += re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line)
    return frozenset(found)


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML = re.compile(r"(?:href|src)=\"([^\"]+)\"")


def links(page: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(strip_fences(page.read_text()), 1):
        line = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        out += [(n, t) for t in LINK.findall(line) + HTML.findall(line)]
        m = re.match(r"\s*\[[^\]]+\]:\s*(\S+)", line)  # reference-style definition
        if m:
            out.append((n, m.group(1)))
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


LINKS = [(page, n, target) for page in PAGES for n, target in links(page)
         if not is_external(target)]


# ---------------------------------------------------------------------------------------------
# Links


def test_the_pages_have_links() -> None:
    # the parser finds what is there (a regex that matched nothing would pass every check)
    readme = [t for p, _, t in LINKS if p == README]
    assert "docs/images/demo-contact-sheet.png" in readme
    assert any(t.startswith("docs/training.md#") for t in readme)
    assert slug("The classic experiments: `python -m fast_nst.apps.experiments`") == \
        "the-classic-experiments-python--m-fast_nstappsexperiments"
    assert slug("Ground truth: the networks against the optimizer (`make compare`)") == \
        "ground-truth-the-networks-against-the-optimizer-make-compare"


@pytest.mark.parametrize(("page", "line", "target"), LINKS,
                         ids=[f"{p.relative_to(ROOT)}:{n}:{t}" for p, n, t in LINKS])
def test_link_resolves(page: Path, line: int, target: str) -> None:
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    where = f"{page.relative_to(ROOT)}:{line}: {target}"
    assert dest.exists(), f"{where}: no such file {dest}"
    assert ROOT in dest.parents or dest == ROOT, f"{where}: outside the repository"
    if anchor:
        assert dest.suffix == ".md", f"{where}: an anchor into a file that is not Markdown"
        assert anchor in anchors(dest), (f"{where}: no heading with that anchor in "
                                         f"{dest.relative_to(ROOT)}; there are: "
                                         f"{', '.join(sorted(anchors(dest)))}")


def test_readme_lists_every_docs_page() -> None:
    text = README.read_text()
    section = text.split("\n## Documentation", 1)
    assert len(section) == 2, "README has no '## Documentation' section"
    listed = {(README.parent / t.partition("#")[0]).resolve()
              for t in LINK.findall(section[1].split("\n## ", 1)[0])}
    pages = set(DOCS.glob("*.md"))
    missing = sorted(str(p.relative_to(ROOT)) for p in pages if p.resolve() not in listed)
    assert not missing, f"README's Documentation list does not link {missing}"


def test_readme_is_for_users() -> None:
    text = README.read_text()
    for pattern in (r"development machine", r"\bsessions?\b", r"\bissues?\b", r"(?<![\w&])#\d+\b"):
        assert not re.search(pattern, text, re.IGNORECASE), f"README mentions {pattern!r}"


# ---------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str
    app: str | None     # a key of APPS, None for `make`, "?" for a line that cannot be checked
    args: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def placeholders(text: str) -> str:
    """`<run>`, `<the run's overrides>`: something to fill in. One that stands alone is left
    out; one inside an argument becomes a plain name (any name does for these checks)."""
    text = re.sub(r"(?:(?<=\s)|^)<[^<>\n]+>(?=\s|$)", "", text)
    return re.sub(r"<[^<>\s]+>", "x", text)


def parse_command(page: Path, line: int, text: str) -> Command | None:
    try:
        tokens = shlex.split(placeholders(text), comments=True)
    except ValueError as err:
        return Command(page, line, text, "?", (f"cannot split the line: {err}",))
    while tokens and (tokens[0] in WRAPPERS or re.match(r"[A-Za-z_]\w*=", tokens[0])):
        tokens = tokens[1:]  # srun, FOO=bar
    if not tokens:
        return None
    head, rest = tokens[0], tokens[1:]
    if head == "make":
        return Command(page, line, text, None, tuple(rest))
    if Path(head).name in CONSOLE:
        return Command(page, line, text, CONSOLE[Path(head).name], tuple(rest))
    if head not in PYTHONS or not rest:
        return None
    if rest[0] in SCRIPTS:
        return Command(page, line, text, SCRIPTS[rest[0]], tuple(rest[1:]))
    if rest[0] == "-m" and len(rest) > 1 and rest[1].startswith("fast_nst"):
        if rest[1] not in MODULES:
            return Command(page, line, text, "?", (f"python -m {rest[1]} is not a known "
                                                   "command; add it to APPS in this test",))
        return Command(page, line, text, MODULES[rest[1]], tuple(rest[2:]))
    return None  # other scripts (benchmarks/...) are not checked here


def commands(page: Path) -> list[Command]:
    out = []
    for start, body in code_blocks(page.read_text()):
        lines = body.split("\n")
        i = 0
        while i < len(lines):
            first, text = i, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
            cmd = parse_command(page, start + first, text)
            if cmd is not None:
                out.append(cmd)
            i += 1
    return out


README_COMMANDS = commands(README)
DOCS_COMMANDS = [c for page in PAGES[1:] for c in commands(page)]


def hydra_overrides(args: tuple[str, ...]) -> list[str]:
    """The overrides of one job: a multirun (-m) is checked with the first value of each
    sweep (a,b,c), which composes like the others."""
    multirun = any(a in ("-m", "--multirun") for a in args)
    out = []
    for arg in args:
        if arg in ("-m", "--multirun"):
            continue
        key, eq, value = arg.partition("=")
        if multirun and eq and "," in value and not re.search(r"[\[\]{}()'\"]", value):
            value = value.split(",")[0]
        out.append(f"{key}{eq}{value}")
    return out


def needs_missing_plugin(overrides: list[str]) -> str | None:
    for o in overrides:
        if o.startswith("hydra/launcher=submitit"):
            try:
                importlib.import_module("hydra_plugins.hydra_submitit_launcher")
            except ImportError:
                return "Hydra's submitit launcher is not installed (pip install -e '.[slurm]')"
    return None


def env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
            "PYTHONWARNINGS": "ignore"}


def argparse_flags(args: tuple[str, ...]) -> list[str]:
    return [a.split("=", 1)[0] for a in args
            if a.startswith("-") and not re.match(r"-\d", a) and a != "-"]


def check_parses(cmd: Command) -> None:
    """The app's own parser accepts the arguments (values, choices, required flags)."""
    parser = importlib.import_module(APPS[cmd.app].parser).build_parser()
    try:
        parser.parse_args(list(cmd.args))
    except SystemExit as err:
        raise AssertionError(f"{cmd.id}: {cmd.app} rejects {cmd.text!r}") from err


@pytest.fixture(scope="module")
def readme_runs() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Every README check that needs a process, started together: `--cfg job` for each Hydra
    command, `--help` once per argparse app."""
    argvs = set()
    for cmd in README_COMMANDS:
        if cmd.app in (None, "?"):
            continue
        app = APPS[cmd.app]
        if app.config:
            if needs_missing_plugin(hydra_overrides(cmd.args)) is None:
                argvs.add((*app.argv, *hydra_overrides(cmd.args), "--cfg", "job"))
        else:
            argvs.add((*app.argv, "--help"))
    procs = {argv: subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for argv in sorted(argvs)}
    done = {}
    try:
        for argv, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            done[argv] = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return done


def test_the_readme_has_commands_to_check() -> None:
    apps = {c.app for c in README_COMMANDS}
    assert {"train", "stylize", "gatys", None} <= apps, apps


def app_of(cmd: Command) -> App | None:
    """The app a command runs; None for a make target (checked here)."""
    assert cmd.app != "?", f"{cmd.id}: {cmd.text}: {cmd.args[0]}"
    if cmd.app is None:
        check_make(cmd)
        return None
    return APPS[cmd.app]


def overrides_to_check(cmd: Command) -> list[str]:
    """The command's Hydra overrides; skips when they need a launcher plugin not installed."""
    overrides = hydra_overrides(cmd.args)
    reason = needs_missing_plugin(overrides)
    if reason:
        pytest.skip(reason)
    return overrides


@pytest.mark.parametrize("cmd", README_COMMANDS, ids=[c.id for c in README_COMMANDS])
def test_readme_command(cmd: Command, readme_runs) -> None:
    app = app_of(cmd)
    if app is None:
        return
    if app.config:
        overrides = overrides_to_check(cmd)
        run = readme_runs[(*app.argv, *overrides, "--cfg", "job")]
        assert run.returncode == 0, f"{cmd.id}: {cmd.text}\n{run.stderr[-2000:]}"
        assert run.stdout.strip(), f"{cmd.id}: --cfg job printed no config"
    else:
        run = readme_runs[(*app.argv, "--help")]
        assert run.returncode == 0, run.stderr[-2000:]
        for flag in argparse_flags(cmd.args):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", run.stdout), \
                f"{cmd.id}: {flag} is not in `{cmd.app} --help`"
        check_parses(cmd)


@pytest.mark.parametrize("cmd", DOCS_COMMANDS, ids=[c.id for c in DOCS_COMMANDS])
def test_docs_command(cmd: Command) -> None:
    app = app_of(cmd)
    if app is None:
        return
    if app.parser:
        check_parses(cmd)
        return
    from hydra import compose, initialize_config_dir

    overrides = style_file_overrides(overrides_to_check(cmd))  # as the apps read style=FILE
    register_schemas()
    folder, name = app.config
    try:
        with initialize_config_dir(config_dir=str(ROOT / folder), version_base="1.3",
                                   job_name="docs"):
            cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    except Exception as err:
        raise AssertionError(f"{cmd.id}: {cmd.text}\n{type(err).__name__}: {err}") from None
    assert cfg is not None


# ---------------------------------------------------------------------------------------------
# make


@functools.cache
def makefile() -> tuple[frozenset[str], str]:
    text = (ROOT / "Makefile").read_text()
    targets = re.findall(r"(?m)^([A-Za-z0-9_.-]+)\s*:(?!=)", text)
    return frozenset(targets), text


def check_make(cmd: Command) -> None:
    targets, text = makefile()
    words = list(cmd.args)
    names = [w for w in words if not w.startswith("-") and "=" not in w]
    assert names, f"{cmd.id}: `make` without a target"
    for name in names:
        assert name in targets, f"{cmd.id}: the Makefile has no target {name!r}"
    for var in (w.split("=", 1)[0] for w in words if "=" in w):
        assert re.search(rf"\$\({re.escape(var)}\)", text), \
            f"{cmd.id}: the Makefile does not use {var}"


INLINE_MAKE = [(page, n, m) for page in PAGES
               for n, line in enumerate(strip_fences(page.read_text()), 1)
               for m in re.findall(r"`make ([A-Za-z][\w-]*)", line)]


@pytest.mark.parametrize(("page", "line", "target"), INLINE_MAKE,
                         ids=[f"{p.relative_to(ROOT)}:{n}:{t}" for p, n, t in INLINE_MAKE])
def test_inline_make_target_exists(page: Path, line: int, target: str) -> None:
    assert target in makefile()[0], f"{page.relative_to(ROOT)}:{line}: no make target {target}"
