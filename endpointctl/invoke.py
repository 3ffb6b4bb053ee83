"""`endpointctl invoke`: the guide's boto3 call, or a POST to a local endpoint."""

from __future__ import annotations

import argparse
import http.client
import json
import shlex
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from endpointctl.aws import client, describe, environment, stack_outputs
from endpointctl.errors import CommandError
from serving_runtime.container import DEFAULT_PORT
from endpointctl.serve_capture import INFERENCE_ID_HEADER


def read_body(args: argparse.Namespace) -> tuple[bytes, str]:
    if args.file is not None:
        if not args.file.is_file():
            raise CommandError(f"--file {args.file} does not exist")
        body = args.file.read_bytes()
        guessed = "text/csv" if args.file.suffix == ".csv" else "application/json"
    else:
        body = args.body.encode("utf-8")
        guessed = "application/json" if args.body.lstrip().startswith(("{", "[")) else "text/csv"
    return body, args.content_type or guessed


def post_local(url: str, body: bytes, content_type: str, accept: str, *,
               inference_id: str | None = None) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT, timeout=65)
    headers = {"Content-Type": content_type, "Accept": accept}
    if inference_id is not None:  # what SageMaker's runtime passes on for InvokeEndpoint's InferenceId
        headers[INFERENCE_ID_HEADER] = inference_id
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    except OSError as error:
        raise CommandError(f"cannot reach the local endpoint at {url}: {error}") from None
    finally:
        connection.close()


def curl_equivalent(endpoint_name: str, region: str, content_type: str, accept: str, body: bytes) -> str:
    """curl >= 7.75 signs with SigV4 itself (the guide uses awscurl for the same)."""
    url = f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{endpoint_name}/invocations"
    return " ".join([
        "curl", "--aws-sigv4", shlex.quote(f"aws:amz:{region}:sagemaker"),
        "--user", '"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"',
        "-H", '"x-amz-security-token: $AWS_SESSION_TOKEN"',
        "-H", shlex.quote(f"Content-Type: {content_type}"), "-H", shlex.quote(f"Accept: {accept}"),
        "--data-binary", shlex.quote(body.decode("utf-8", errors="replace")), url,
    ])


def run_invoke(args: argparse.Namespace) -> int:
    body, content_type = read_body(args)
    if args.local:
        status, response_type, payload = post_local(args.local, body, content_type, args.accept,
                                                     inference_id=args.inference_id)
        print(payload.decode("utf-8", errors="replace"))
        if status != 200:
            raise CommandError(f"the local endpoint answered {status} ({response_type})")
        return 0

    endpoint_name = args.endpoint_name or stack_outputs(args.env)["EndpointName"]
    runtime = client("sagemaker-runtime", environment(args.env).region if args.env else None)
    if args.curl:
        print(curl_equivalent(endpoint_name, runtime.meta.region_name, content_type, args.accept, body))
    optional = {"InferenceId": args.inference_id} if args.inference_id is not None else {}
    try:
        response = describe(
            runtime.invoke_endpoint, EndpointName=endpoint_name, ContentType=content_type, Accept=args.accept, Body=body,
            **optional,
        )
    except ClientError as error:
        raise CommandError(explain_runtime_error(endpoint_name, error)) from None
    payload = response["Body"].read().decode("utf-8", errors="replace")
    try:
        print(json.dumps(json.loads(payload), indent=2))
    except ValueError:
        print(payload)
    return 0


def explain_runtime_error(endpoint_name: str, error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", str(error))
    if code == "ModelError":
        original = error.response.get("OriginalStatusCode")
        detail = error.response.get("OriginalMessage") or message
        return f"the model answered {original or 'an error'}: {detail} (logs: /aws/sagemaker/Endpoints/{endpoint_name})"
    if code == "ValidationError" and "not found" in message.lower():
        return f"endpoint {endpoint_name} does not exist: deploy it with `npx cdk deploy`"
    if code == "ValidationError":
        return f"request refused: {message}"
    if code in ("ServiceUnavailable", "ThrottlingException", "ModelNotReadyException"):
        return f"{code}: {message} — the endpoint is busy or still starting; retry shortly"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"{code}: {message} — the caller needs sagemaker:InvokeEndpoint on {endpoint_name}"
    return f"{code or 'error'}: {message}"
