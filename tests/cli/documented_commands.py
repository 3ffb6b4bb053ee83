"""The command lines the documentation shows, read from it, and what the tests do with each.

Commands are extracted from the shell code blocks (```bash, sh, shell, console) of
README.md and docs/*.md, and from the command lines `endpointctl … --help` prints. Each
is classified by the first rule of RULES it matches (or by a marker the document puts on
the line just before its block: `<!-- commands: parse -->` for a block of real-AWS-only
commands); tests/cli/test_documented_commands.py then runs it, parses it or checks that the
suite runs it elsewhere. A command no rule matches fails the suite, saying what to do.

Inline code spans that start with `endpointctl ` or `npx cdk ` are mentions in prose,
often with placeholders (`--env NAME`): they are checked to name a real command and flags
it takes.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT

DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*commands:\s*([a-z-]+)\s*-->\s*$")
COMMAND_START = re.compile(r"^\s*(\$ )?(endpointctl|npx|cdk|make|python|pip) ")
INLINE_COMMAND = re.compile(r"`((?:endpointctl|npx cdk) [^`\n]+)`")

# How each kind is handled (tests/cli/test_documented_commands.py):
RUN = "run"  # run in one workspace on the local AWS; must exit 0 (or as `expect` says)
SERVE = "serve"  # a server the user leaves running: started in the background, stopped at the end
SHELL = "shell"  # changes the shell (export): run, and its environment kept for what follows
PARSE = "parse"  # real AWS only: parsed by the tool that would run it (argparse, `cdk <cmd> --help`)
SUITE = "suite"  # the suite itself (`make test`, a pytest subset) or the machine it runs on: the target, files and markers must exist
KINDS = (RUN, SERVE, SHELL, PARSE, SUITE)

# Order of the run: commands run by phase, then in document order.
SETUP, BEFORE_DEPLOY, DEPLOY, DEPLOYED, LAST = range(5)


@dataclass(frozen=True)
class Rule:
    pattern: str  # a regex matched (re.search) against the command's words joined by one space
    kind: str
    why: str
    phase: int = DEPLOYED
    answers: tuple[str, ...] = ()  # flags that answer an interactive prompt a user answers "y" to
    expect: tuple[int, str] | None = None  # (exit status, words in stderr) where the local AWS cannot do better


RULES: tuple[Rule, ...] = (
    Rule(r"^make (test|demo)\b", SUITE, "the suite is `make test`; `make demo` is `python -m devtools.demo`, run by tests/release/test_e2e.py"),
    Rule(r"^make (setup|bench|synth|snapshot-update)\b", SUITE, "sets up or measures the machine the suite runs on"),
    Rule(r"^(\.venv/bin/)?python -m pytest\b", SUITE, "a subset of the suite: the files it names and the markers it "
         "selects must exist (tests/cli/test_documented_commands.py)"),
    Rule(r"^export PATH=", SHELL, "puts the project's CDK CLI and endpointctl on PATH", phase=SETUP),
    Rule(r"--profile\b", PARSE, "names an AWS profile: another account, real AWS only"),
    Rule(r"^npx cdk bootstrap .*--trust\b", PARSE, "trusts another account: real AWS only"),
    Rule(r"^npx cdk .*-c pipeline=true", PARSE, "the pipeline needs a CodeStar connection and three accounts"),
    Rule(r"^endpointctl train-sample\b", RUN, "trains the sample model", phase=SETUP),
    Rule(r"^npx cdk bootstrap aws://ACCOUNT/REGION$", RUN, "bootstraps the local AWS", phase=SETUP),
    # In document order, after the deploy: the invokes that follow a `serve` in a document go to
    # it, and a second `serve` replaces the first, as a user restarts it in the other terminal.
    Rule(r"^endpointctl serve\b", SERVE, "a local endpoint the user leaves running"),
    Rule(r"^npx cdk (diff|synth)\b", RUN, "compares with or synthesizes what is deployed", phase=BEFORE_DEPLOY),
    Rule(r"^npx cdk deploy\b", RUN, "deploys to the local AWS", phase=DEPLOY, answers=("--require-approval", "never")),
    # The local AWS completes transform jobs without writing output (README, Known limits): the
    # job is created as on AWS (tests/release/test_promotion_e2e.py checks its request), then this.
    Rule(r"^endpointctl transform\b(?!.*--local)", RUN, "a SageMaker transform job on the deployed stack",
         expect=(1, "is not there")),
    Rule(r"^endpointctl (preflight|invoke|transform|status|cost|plan|register|approve|reject|smoke-test)\b", RUN,
         "runs against the deployed stack, the local endpoint or the workspace's files"),
    Rule(r"^endpointctl (baseline|monitor|compare)\b(?!.*--env)", RUN,
         "scores a holdout, or reads the capture the local endpoint wrote"),
    Rule(r"^npx cdk destroy\b", RUN, "removes what the run deployed", phase=LAST, answers=("--force",)),
)

# Placeholders in the documents, and what the run puts in their place.
PLACEHOLDERS = {"ACCOUNT": "123456789012", "REGION": "us-east-1"}  # devtools.demo's local account


@dataclass(frozen=True)
class Shown:
    """One command line as a document (or a --help) shows it."""

    where: str  # README.md:123
    line: str  # as shown, comment removed: what the user types into bash
    argv: tuple[str, ...]
    marker: str | None = None

    def rule(self) -> Rule | None:
        if self.marker:
            return Rule(".*", self.marker, f"marked `<!-- commands: {self.marker} -->` in {self.where.split(':')[0]}")
        words = " ".join(self.argv)  # spacing and quoting as the shell splits them
        return next((rule for rule in RULES if re.search(rule.pattern, words)), None)


@dataclass
class Extracted:
    commands: list[Shown] = field(default_factory=list)
    mentions: list[Shown] = field(default_factory=list)  # inline `endpointctl …` and `npx cdk …` spans
    problems: list[str] = field(default_factory=list)


def extract(document: Path) -> Extracted:
    found = Extracted()
    name = document.relative_to(ROOT).as_posix() if document.is_relative_to(ROOT) else document.name
    lines = document.read_text().splitlines()
    fence, language, marker, pending, start = None, "", None, "", 0
    for number, line in enumerate(lines, 1):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, language = opened.group(1), opened.group(2).lower()
            before = next((earlier for earlier in reversed(lines[:number - 1]) if earlier.strip()), "")
            marked = MARKER.match(before)
            marker = marked.group(1) if marked else None
            if marker and marker not in KINDS:
                found.problems.append(f"{name}:{number - 1}: unknown marker {marker!r}; allowed: {', '.join(KINDS)}")
            continue
        if fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            elif language in SHELL_LANGUAGES:
                start = start if pending else number  # a command continued with `\` is where it starts
                pending = _shell_line(found, f"{name}:{start}", pending + line, marker)
            elif not language and COMMAND_START.match(line):
                found.problems.append(f"{name}:{number}: a command in a code block without a language: "
                                      "label the block ```bash (commands are run) or ```text (they are not)")
            continue
        for span in INLINE_COMMAND.finditer(line):
            found.mentions.append(Shown(f"{name}:{number}", span.group(1), tuple(span.group(1).split())))
    return found


def _shell_line(found: Extracted, where: str, line: str, marker: str | None) -> str:
    """Adds the command on `line`; returns what continues on the next line (a trailing `\\`)."""
    if line.rstrip().endswith("\\"):
        return line.rstrip()[:-1] + " "
    text = _code(line.strip().removeprefix("$ "))
    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        found.problems.append(f"{where}: `{text}` is not one shell command line ({error})")
        return ""
    if argv:
        found.commands.append(Shown(where, text, argv, marker))
    return ""


def _code(text: str) -> str:
    """The line without its shell comment: from a `#` outside quotes that starts a word."""
    quote = None
    for i, character in enumerate(text):
        if quote:
            quote = None if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


def help_commands(parser: argparse.ArgumentParser) -> Extracted:
    """Command lines that `endpointctl --help` and each `endpointctl COMMAND --help` print
    (in a description or epilog), as documents show them."""
    found = Extracted()
    for command, sub in [("", parser), *subcommands(parser).items()]:
        for line in sub.format_help().splitlines():
            if line.strip().startswith("endpointctl ") and not line.strip().startswith("endpointctl: "):
                where = f"endpointctl {command} --help".replace("  ", " ")
                _shell_line(found, where, line, None)
    return found


def all_shown() -> Extracted:
    from endpointctl.cli import build_parser

    everything = Extracted()
    for part in [*(extract(document) for document in DOCUMENTS), help_commands(build_parser())]:
        everything.commands += part.commands
        everything.mentions += part.mentions
        everything.problems += part.problems
    return everything


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """A command's options by flag, without -h/--help."""
    return {flag: action for action in parser._actions if not isinstance(action, argparse._HelpAction)
            for flag in action.option_strings}


def substituted(line: str) -> str:
    words = re.compile(r"\b(" + "|".join(map(re.escape, PLACEHOLDERS)) + r")\b")
    return words.sub(lambda m: PLACEHOLDERS[m.group(1)], line)
