"""The deployed stack of an environment as a one-stack cloud assembly: the base the
pipeline's release plan (`endpointctl plan --base … --head …`) compares the synthesized
stack with. No stack yet (the first deploy) gives an assembly without it.

    python -m endpointctl.deployed --env prod --out base-assembly
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment
from endpointctl.plan.assembly import STACK_ARTIFACT



def write_deployed_assembly(env_name: str, out: Path) -> Path:
    env = environment(env_name)
    stack_name = env.stack_name
    out.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    try:
        body = describe(client("cloudformation", env.region).get_template, StackName=stack_name,
                        TemplateStage="Original")["TemplateBody"]
    except ClientError as error:
        if "does not exist" not in str(error):
            raise
        body = None
    if body is not None:
        template = json.loads(body) if isinstance(body, str) else body
        (out / f"{stack_name}.template.json").write_text(json.dumps(template, indent=1))
        artifacts[stack_name] = {"type": STACK_ARTIFACT, "environment": "aws://unknown-account/unknown-region",
                                 "properties": {"templateFile": f"{stack_name}.template.json", "stackName": stack_name}}
    (out / "manifest.json").write_text(json.dumps({"version": "36.0.0", "artifacts": artifacts}, indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m endpointctl.deployed", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment from cdk.json")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the assembly to")
    args = parser.parse_args(argv)
    from endpointctl.errors import known_errors

    try:
        out = write_deployed_assembly(args.env, args.out)
    except known_errors() as error:
        print(f"endpointctl.deployed: {error}", file=sys.stderr)
        return 1
    stacks = json.loads((out / "manifest.json").read_text())["artifacts"]
    print(f"wrote {out}: {', '.join(stacks) or 'no stack deployed yet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
