"""`endpointctl transform`: Batch Transform, on SageMaker or through a local endpoint.

Locally it does what a transform job does with the guide's settings: split the input
by line (`SplitType=Line`), pack whole lines into mini-batches up to `MaxPayloadInMB`
(`BatchStrategy=MultiRecord`), POST each as text/csv with Accept text/csv, up to
`MaxConcurrentTransforms` at a time, and assemble the responses in input order, each
ending in a newline (`AssembleWith=Line`), into `<input name>.out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

from botocore.exceptions import ClientError

from endpointctl.arguments import START_ONE
from endpointctl.errors import CommandError
from serving_config.config import Environment
from endpointctl.invoke import post_local
from serving_runtime.contract import MIB, TRANSFORM_PAYLOAD_BUDGET_MB

CSV = "text/csv"


def numbered_mini_batches(data: bytes, max_payload_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(line number of its first record, counting from 1; mini-batch): whole lines, packed
    up to `max_payload_bytes` each; a longer line is an error, as it is for SageMaker."""
    start, size, line = 0, len(data), 1
    while start < size:
        end = min(start + max_payload_bytes, size)
        if end < size:
            cut = data.rfind(b"\n", start, end)
            if cut < 0:
                raise CommandError(f"line {line} is longer than MaxPayloadInMB ({max_payload_bytes // MIB} MB)")
            end = cut + 1
        chunk = data[start:end]
        if chunk.strip():
            yield line, chunk.rstrip(b"\n")
        line += chunk.count(b"\n")
        start = end


def mini_batches(data: bytes, max_payload_bytes: int) -> Iterator[bytes]:
    return (batch for _, batch in numbered_mini_batches(data, max_payload_bytes))


def refusal(input_path: Path, first_line: int, status: int, payload: bytes) -> CommandError:
    """Where in the input file the endpoint's refusal points: its `row` counts records
    from 0 within the mini-batch, which starts at `first_line`."""
    try:
        reason = json.loads(payload)
        message, row = str(reason["error"]), reason.get("row")
    except (ValueError, KeyError, TypeError):
        message, row = payload[:300].decode(errors="replace"), None
    if isinstance(row, int):
        where = f"line {first_line + row} of {input_path}"
    else:
        where = f"the mini-batch starting at line {first_line} of {input_path}"
    return CommandError(f"{where}: the endpoint answered {status}: {message}; nothing was written")


def transform_local(
    url: str, input_path: Path, output_dir: Path, *, max_payload_mb: int, max_concurrent: int, progress: bool = True
) -> Path:
    """Score `input_path` into `output_dir/<name>.out`: written under a temporary name and
    renamed once every mini-batch is answered, so a failure leaves no partial output."""
    from tqdm import tqdm

    data = input_path.read_bytes()
    batches = list(numbered_mini_batches(data, max_payload_mb * MIB))
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    out_path = output_dir / f"{input_path.name}.out"

    def send(numbered: tuple[int, bytes]) -> bytes:
        first_line, batch = numbered
        status, _, payload = post_local(url, batch, CSV, CSV)
        if status != 200:
            raise refusal(input_path, first_line, status, payload)
        return payload if payload.endswith(b"\n") else payload + b"\n"

    partial = tempfile.NamedTemporaryFile(dir=output_dir, prefix=f".{out_path.name}.", suffix=".partial", delete=False)
    try:
        with tqdm(total=len(data), unit="B", unit_scale=True, desc=f"transform {input_path.name}", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=max_concurrent) as pool, partial:
            # map() yields in input order, whatever order the mini-batches finish in.
            for (_, batch), result in zip(batches, pool.map(send, batches)):
                partial.write(result)
                bar.update(len(batch) + 1)
        os.replace(partial.name, out_path)
    except BaseException:
        Path(partial.name).unlink(missing_ok=True)
        if created:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return out_path


def run_transform(args: argparse.Namespace) -> int:
    from endpointctl.aws import environment

    env = environment(args.env)
    max_payload_mb = args.max_payload_mb or env.batch.max_payload_mb
    max_concurrent = args.max_concurrent_transforms or env.batch.max_concurrent_transforms
    if max_payload_mb * max_concurrent > TRANSFORM_PAYLOAD_BUDGET_MB:
        raise CommandError(f"--max-payload-mb {max_payload_mb} x --max-concurrent-transforms {max_concurrent} = "
                           f"{max_payload_mb * max_concurrent}; allowed: a product of at most "
                           f"{TRANSFORM_PAYLOAD_BUDGET_MB} (SageMaker's limit)")
    if not args.input.is_file():
        raise CommandError(f"--input {args.input} does not exist")
    if args.local is None:
        return run_transform_job(args, env, max_payload_mb=max_payload_mb, max_concurrent=max_concurrent)

    with ExitStack() as stack:
        url = args.local
        if url is START_ONE:
            from endpointctl.local import LocalEndpoint

            endpoint = LocalEndpoint(
                model_data=args.model_data,
                workers=max_concurrent,
                env={"HANDLER_MAX_REQUEST_BYTES": str(max_payload_mb * MIB)},
            )
            url = stack.enter_context(endpoint).url
        started = time.perf_counter()
        out = transform_local(url, args.input, args.output, max_payload_mb=max_payload_mb, max_concurrent=max_concurrent)
    lines = sum(1 for _ in out.open("rb"))
    print(f"wrote {out} ({lines:,} lines) in {time.perf_counter() - started:.1f}s")
    return 0


def run_transform_job(args: argparse.Namespace, env: Environment, *, max_payload_mb: int, max_concurrent: int) -> int:
    """CreateTransformJob with the stack's batch model, then wait and fetch the output."""
    from endpointctl.aws import client, describe, stack_outputs

    outputs = stack_outputs(args.env)
    bucket = outputs["BucketName"]
    job_name = env.transform_job_name()
    input_key = f"batch-input/{job_name}/{args.input.name}"
    output_prefix = f"batch-output/{job_name}/"
    s3 = client("s3", env.region)
    describe(s3.upload_file, str(args.input), bucket, input_key)
    sagemaker = client("sagemaker", env.region)
    describe(
        sagemaker.create_transform_job,
        TransformJobName=job_name,
        ModelName=outputs["BatchModelName"],
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=max_payload_mb,
        MaxConcurrentTransforms=max_concurrent,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{input_key}"}},
            "ContentType": CSV,
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/{output_prefix}", "Accept": CSV, "AssembleWith": "Line",
                         **({"KmsKeyId": outputs["DataKeyArn"]} if "DataKeyArn" in outputs else {})},
        TransformResources={"InstanceType": env.batch.instance_type, "InstanceCount": env.batch.instance_count},
        Tags=[{"Key": k, "Value": v} for k, v in env.tags.items()],
    )
    print(f"started transform job {job_name} ({env.batch.instance_count} x {env.batch.instance_type})")
    status = wait_for_job(sagemaker, job_name)
    if status["TransformJobStatus"] != "Completed":
        raise CommandError(f"transform job {job_name} {status['TransformJobStatus']}: {status.get('FailureReason', 'no reason given')}")
    output_key = f"{output_prefix}{args.input.name}.out"
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / f"{args.input.name}.out"
    try:
        describe(s3.download_file, bucket, output_key, str(target))
    except ClientError:
        raise CommandError(f"transform job {job_name} completed but s3://{bucket}/{output_key} is not there") from None
    print(f"completed: s3://{bucket}/{output_key} -> {target}")
    return 0


def wait_for_job(sagemaker, job_name: str, *, poll_seconds: float = 15) -> dict:
    from tqdm import tqdm

    from endpointctl.aws import describe

    with tqdm(desc=f"{job_name}", bar_format="{desc}: {postfix} [{elapsed}]") as bar:
        while True:
            status = describe(sagemaker.describe_transform_job, TransformJobName=job_name)
            bar.set_postfix_str(status["TransformJobStatus"])
            if status["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
                return status
            time.sleep(poll_seconds)
