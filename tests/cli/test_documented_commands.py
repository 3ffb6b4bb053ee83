"""What the README, docs/*.md and `--help` show, a test runs (issue 22, item 1).

The commands are read from the documents (tests/cli/documented_commands.py), not listed
here: a new code block is picked up, and a command no rule classifies fails the suite.
The runnable ones run in one workspace against one local AWS, in phases (set-up, synth,
deploy, what needs the deployed stack, destroy), so one deploy serves them all.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from endpointctl.cli import build_parser
from endpointctl.local import free_port
from tests.conftest import CDK_JSON, ROOT
from tests.cli.documented_commands import (
    PARSE, RUN, SERVE, SHELL, SUITE, Rule, Shown, all_shown, options, subcommands, substituted,
)

SHOWN = all_shown()
WHAT_TO_DO = ("add a rule to RULES in tests/cli/documented_commands.py (run, parse, ...), or put "
              "`<!-- commands: parse -->` on the line before its code block if it can only run on real AWS")


def _ids(commands: list[Shown]) -> list[str]:
    return [f"{c.where} {c.line[:60]}" for c in commands]


def test_the_documents_show_commands_and_each_is_well_formed():
    assert not SHOWN.problems, "\n".join(SHOWN.problems)
    assert any(c.argv[0] == "endpointctl" for c in SHOWN.commands), "no endpointctl command found in README.md"


def test_extraction_reads_shell_blocks_markers_continuations_and_mentions(tmp_path):
    from tests.cli.documented_commands import extract

    document = tmp_path / "guide.md"
    document.write_text(
        "Run `endpointctl status --env NAME` after a deploy.\n\n"
        "```bash\n$ endpointctl cost --env prod  # monthly\nendpointctl invoke --env dev \\\n  --body '{\"a\": \"#1\"}'\n```\n\n"
        "<!-- commands: parse -->\n```sh\nnpx cdk deploy --profile prod\n```\n\n"
        "```json\n{\"endpointctl\": 1}\n```\n\n"
        "```\nendpointctl status\n```\n")
    found = extract(document)
    assert [(c.where, c.argv, c.marker) for c in found.commands] == [
        ("guide.md:4", ("endpointctl", "cost", "--env", "prod"), None),
        ("guide.md:5", ("endpointctl", "invoke", "--env", "dev", "--body", '{"a": "#1"}'), None),
        ("guide.md:11", ("npx", "cdk", "deploy", "--profile", "prod"), "parse"),
    ]
    assert found.commands[2].rule().kind == PARSE
    assert [m.line for m in found.mentions] == ["endpointctl status --env NAME"]
    assert found.problems == ["guide.md:19: a command in a code block without a language: label the block "
                              "```bash (commands are run) or ```text (they are not)"]


def test_every_shown_command_is_classified():
    unknown = [f"{c.where}: `{c.line}`" for c in SHOWN.commands if c.rule() is None]
    assert not unknown, "the test cannot classify these commands; " + WHAT_TO_DO + ":\n" + "\n".join(unknown)


def test_every_endpointctl_mention_names_a_real_command_and_real_flags():
    """Inline `endpointctl …` in prose: the command exists and it takes each flag shown."""
    commands = subcommands(build_parser())
    wrong = []
    for mention in [c for c in SHOWN.mentions + SHOWN.commands if c.argv[0] == "endpointctl"]:
        command = mention.argv[1] if len(mention.argv) > 1 else ""
        if command not in commands:
            wrong.append(f"{mention.where}: `{mention.line}`: no command {command!r}")
            continue
        flags = {arg.split("=")[0] for arg in mention.argv[2:] if arg.startswith("--")}
        wrong += [f"{mention.where}: `{mention.line}`: `endpointctl {command}` has no {flag}"
                  for flag in sorted(flags - set(options(commands[command])) - {"--help"})]
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------- real-AWS-only: parsed


PARSED = [c for c in SHOWN.commands if c.rule() and c.rule().kind == PARSE] + [
    c for c in SHOWN.mentions if c.argv[:2] == ("npx", "cdk")]


@pytest.mark.parametrize("shown", PARSED, ids=_ids(PARSED))
def test_real_aws_only_commands_parse(shown: Shown):
    """Real-AWS-only blocks, and `npx cdk …` in prose: the tool that would run them takes them."""
    argv = list(shown.argv)
    if argv[0] == "endpointctl":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exit_:
            pytest.fail(f"{shown.where}: `{shown.line}` does not parse (exit {exit_.code})")
    elif argv[:2] == ["npx", "cdk"]:
        verb, flags = argv[2], {a.split("=")[0] for a in argv[3:] if a.startswith("-")}
        offered = cdk_options(verb)
        assert offered, f"{shown.where}: `cdk {verb}` is not a cdk command"
        assert flags <= offered, f"{shown.where}: `cdk {verb}` takes no {sorted(flags - offered)}"
    else:
        pytest.fail(f"{shown.where}: `{shown.line}`: the test knows how to parse endpointctl and npx cdk only; "
                    + WHAT_TO_DO)


@functools.cache
def cdk_options(verb: str) -> set[str]:
    """The flags `cdk VERB --help` lists (empty when VERB is not a cdk command)."""
    helped = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), verb, "--help"],
                            capture_output=True, text=True, timeout=120)
    # An unknown verb prints the general help (exit 0); a command's own help starts with it.
    known = helped.returncode == 0 and helped.stdout.lstrip().startswith(f"cdk {verb}")
    return set(re.findall(r"(?<![\w-])(--?[\w-]+)", helped.stdout)) if known else set()


SUITE_COMMANDS = [c for c in SHOWN.commands if c.rule() and c.rule().kind == SUITE]


@pytest.mark.parametrize("shown", SUITE_COMMANDS, ids=_ids(SUITE_COMMANDS))
def test_suite_commands_shown_exist(shown: Shown):
    """`make TARGET`: the target exists. A pytest subset: the files it names exist, and its
    `-m` expression names only declared markers (pytest's --strict-markers would refuse
    others only at run time)."""
    if shown.argv[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
        assert set(shown.argv[1:]) <= targets, (
            f"{shown.where}: `{shown.line}`: the Makefile has no such target (it has {sorted(targets)})")
        return
    import tomllib

    argv = list(shown.argv)
    assert argv[1:3] == ["-m", "pytest"], f"{shown.where}: `{shown.line}`: not `python -m pytest`"
    declared = {marker.split(":")[0] for marker in
                tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]}
    arguments = argv[3:]
    for flag, value in zip(arguments, arguments[1:]):
        if flag == "-m":
            named = set(re.findall(r"\w+", value)) - {"and", "or", "not"}
            assert named <= declared, f"{shown.where}: `{shown.line}`: no marker {sorted(named - declared)}"
    files = [a for a in arguments if a.startswith("tests/")]
    assert all((ROOT / f.split("::")[0]).exists() for f in files), (
        f"{shown.where}: `{shown.line}`: no {[f for f in files if not (ROOT / f.split('::')[0]).exists()]}")


# -------------------------------------------------------------- the parser itself


def _string_words(path: Path) -> set[str]:
    """Every word of every string literal in a test module: the argv the tests pass."""
    words: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words.update(node.value.split())
    return words


def test_every_command_and_flag_is_shown_or_tested():
    """A new endpointctl command or flag (read from the parser) needs a documented
    command or a test module whose arguments name both the command and the flag."""
    shown = [c.argv for c in SHOWN.commands + SHOWN.mentions if c.argv[0] == "endpointctl" and len(c.argv) > 1]
    this = {Path(__file__).name, "documented_commands.py"}
    tested = [_string_words(path) for path in sorted((ROOT / "tests").rglob("*.py")) if path.name not in this]
    missing = []
    for command, parser in subcommands(build_parser()).items():
        if not any(argv[1] == command for argv in shown) and not any(command in words for words in tested):
            missing.append(f"endpointctl {command}")
        for flag in options(parser):
            if not flag.startswith("--"):
                continue
            if not any(argv[1] == command and flag in argv for argv in shown) and not any(
                    command in words and flag in words for words in tested):
                missing.append(f"endpointctl {command} {flag}")
    assert not missing, ("neither a document nor a test runs these; show them in README.md or docs/*.md, or "
                         "test them (tests/cli/test_cli.py):\n" + "\n".join(missing))


def test_an_option_given_without_its_value_takes_its_const_unchanged():
    """argparse runs a *string* const through the option's `type`: `transform --local`
    alone met the URL check and exited 2. Every optional-value option, bare, parses."""
    for command, parser in subcommands(build_parser()).items():
        for flag, action in options(parser).items():
            if action.nargs == "?" and action.option_strings[0] == flag:
                assert parser._get_values(action, []) is action.const, f"endpointctl {command} {flag}"


def test_transform_local_without_a_url_starts_its_own_endpoint(sample_model, tmp_path):
    """The command of issue 22, as the help shows it (`--local [URL]`: none to start one)."""
    from tests.cli.test_cli import endpointctl

    (tmp_path / "x.csv").write_text("0.5,1.2,0.3,0.8,0.1\n-0.2,0.7,1.1,0.4,0.6\n")
    done = endpointctl("transform", "--input", "x.csv", "--local", "--model-data", str(sample_model), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "batch-output" / "x.csv.out").read_text().splitlines()
    assert len(lines) == 2 and all(line.split(",")[0] in ("0", "1") for line in lines)


def test_the_examples_in_help_parse_with_their_option():
    """An `e.g. VALUE` in an option's help is a value that option accepts."""
    import shlex

    checked = 0
    for command, parser in subcommands(build_parser()).items():
        for flag, action in options(parser).items():
            for example in re.findall(r"e\.g\. ('[^']*'|\S+)", action.help or ""):
                value = shlex.split(example.rstrip(",;)"))[0]
                if action.type is not None:
                    action.type(value)  # raises with the reason if the help shows a value it refuses
                checked += 1
    assert checked


# --------------------------------------------------------- runnable: on the local AWS

RUNNABLE = sorted(((c, c.rule()) for c in SHOWN.commands if c.rule() and c.rule().kind in (RUN, SERVE, SHELL)),
                  key=lambda pair: pair[1].phase)  # stable: document order within a phase
WORKSPACE_FILES = {"transactions.csv": "0.5,1.2,0.3,0.8,0.1\n-0.2,0.7,1.1,0.4,0.6\n"}
DEFAULT_PORT = "8080"  # `serve`'s default: taken by another test on a shared machine, so moved to a free port


def workspace(folder: Path) -> Path:
    """A folder as a user's clone looks to the commands: cdk.json (app = this repository's
    app.py, model_data = the model.tar.gz the README trains there), node_modules and .venv."""
    import copy
    import json

    document = copy.deepcopy(CDK_JSON)
    document["app"] = f"{sys.executable} {ROOT / 'app.py'}"
    document["context"]["serving"]["model_data"] = str(folder / "model.tar.gz")
    (folder / "cdk.json").write_text(json.dumps(document, indent=1))
    (folder / "package.json").write_text((ROOT / "package.json").read_text())
    for name in ("node_modules", ".venv"):
        (folder / name).symlink_to(ROOT / name)
    for name, text in WORKSPACE_FILES.items():
        (folder / name).write_text(text)
    return folder


def user_environment() -> dict[str, str]:
    """This process's environment (the local AWS's variables among it) without the
    project's tools on PATH: the README's `export PATH=…` must put them there."""
    project_bins = {str(ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)}
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p not in project_bins]
    return {**os.environ, "PATH": os.pathsep.join(path), "ENDPOINTCTL_DEBUG": "0"}


def registered_versions() -> int:
    """Versions in the deployed registry's group, as `endpointctl register` finds it."""
    import boto3

    from endpointctl.registry import registry
    from serving_config.config import load_config

    group = registry(load_config().registry_environment).group
    return len(boto3.client("sagemaker").list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"])


class Session:
    """One user's shell: the environment `export` changes, servers left running."""

    def __init__(self, folder: Path):
        self.folder, self.env, self.servers, self.port = folder, user_environment(), [], str(free_port())

    def bash(self, line: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line], cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=900, **kwargs)

    def line_for(self, shown: Shown, rule: Rule) -> str:
        line = substituted(shown.line).replace(f":{DEFAULT_PORT}", f":{self.port}")
        if rule.kind == SERVE and "--port" not in shown.argv:
            line += f" --port {self.port}"
        return " ".join([line, *rule.answers])

    def prepare(self, shown: Shown) -> str | None:
        """`approve N` / `reject N` need N versions: the user registered them (the README
        shows one `register`); registered here the same way."""
        if shown.argv[:2] in (("endpointctl", "approve"), ("endpointctl", "reject")) and shown.argv[2].isdigit():
            for _ in range(int(shown.argv[2]) - registered_versions()):
                done = self.bash("endpointctl register --model-data model.tar.gz")
                if done.returncode != 0:
                    return f"registering a version before it failed: {done.stderr.strip()[-500:]}"
        return None

    def run(self, shown: Shown, rule: Rule) -> str | None:
        """Runs one command; a problem in one line, or None."""
        line = self.line_for(shown, rule)
        if rule.kind == SHELL:
            done = self.bash(f"{line} && env -0")
            if done.returncode == 0:
                self.env = dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
        elif rule.kind == SERVE:
            return self.start_server(line)
        else:
            done = self.bash(line)
        expected_status, words = rule.expect or (0, "")
        if done.returncode != expected_status or words not in done.stderr or "Traceback" in done.stderr:
            return (f"exit {done.returncode} (expected {expected_status}{f', saying {words!r}' if words else ''}): "
                    f"{(done.stdout + done.stderr).strip()[-1500:]}")
        return None

    def start_server(self, line: str) -> str | None:
        self.stop_servers()  # the user's other terminal: a new `serve` replaces the one running
        server = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=self.folder, env=self.env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.servers.append(server)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return None
            except OSError:
                time.sleep(0.3)
        return f"no 200 from /ping: {server.stderr.read()[-1500:] if server.poll() is not None else 'still starting after 120 s'}"

    def stop_servers(self) -> None:
        import signal

        for server in self.servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
        self.servers = []


@pytest.mark.e2e
def test_runnable_commands_succeed_on_the_local_aws(tmp_path):
    """Each runnable command, as typed, in one workspace on one local AWS; all failures
    are reported together."""
    from devtools.demo import local_aws

    assert RUNNABLE, "no runnable command found in the documents"
    session = Session(workspace(tmp_path))
    failed = []
    with local_aws():
        session.env = user_environment()
        try:
            for shown, rule in RUNNABLE:
                problem = session.prepare(shown) or session.run(shown, rule)
                if problem:
                    failed.append(f"{shown.where}: `{shown.line}`: {problem}")
        finally:
            session.stop_servers()
    assert not failed, "\n\n".join(failed)
