"""Checked values for endpointctl's command lines and environment: each failure names
the value and what is allowed, in one line.

The argparse types raise `argparse.ArgumentTypeError` (argparse adds the option's name);
the environment readers raise `CommandError` naming the variable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from endpointctl.errors import CommandError
from serving_runtime.contract import SAGEMAKER_NAME_BOUNDED
from monitoring.capture import parse_time

Parse = Callable[[str], object]


def _shown(value: str) -> str:
    """The value as the user typed it, quoted, with undecodable bytes escaped."""
    return repr(value)


def _refused(value: str, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"got {_shown(value)}; allowed: {allowed}")


def matching(pattern: str, allowed: str) -> Parse:
    """A value `pattern` matches whole."""
    compiled = re.compile(pattern)

    def parse(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _refused(value, allowed)
        return value

    return parse


def whole_number(minimum: int, maximum: int | None = None, *, what: str = "a whole number") -> Parse:
    allowed = f"{what} from {minimum} to {maximum}" if maximum is not None else f"{what} >= {minimum}"

    def parse(value: str) -> int:
        digits = value.strip()
        number = int(digits) if re.fullmatch(r"[+-]?[0-9]{1,30}", digits) else None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise _refused(value, allowed)
        return number

    return parse


def finite_non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise _refused(value, "a finite number >= 0")
    return number


def text(value: str) -> str:
    """A value that must be text: an undecodable byte in the shell's argument (e.g.
    $'\\xff') arrives as a lone surrogate and cannot be sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"got {_shown(value)}, which is not UTF-8 text; allowed: text (put bytes in a file and use --file)"
        ) from None
    return value


# An HTTP header value: visible characters and spaces, nothing that could end the header.
header_value = matching(r"[\t\x20-\x7e]{0,1024}",
                        "up to 1024 printable ASCII characters (a media type such as text/csv)")


def path(value: str) -> Path:
    text(value)
    if not value or "\x00" in value:
        raise _refused(value, "a file or folder path")
    return Path(value)


def program(value: str) -> str:
    """SAGEMAKER_PROGRAM: a file name inside the code folder."""
    text(value)
    if not value or "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise _refused(value, "a file name in the code folder, e.g. inference.py")
    return value


def http_url(value: str) -> str:
    """A local endpoint's URL: http(s)://host[:port], port 1-65535."""
    text(value)
    problem = None
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        problem, port = "the port is not a number from 1 to 65535", None
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it has no http:// or https:// scheme"
        elif not parts.hostname:
            problem = "it has no host"
        elif port == 0:
            problem = "the port is not a number from 1 to 65535"
    if problem:
        raise argparse.ArgumentTypeError(f"got {_shown(value)}: {problem}; allowed: a URL such as http://127.0.0.1:8080")
    return value


def location(value: str) -> str:
    """A local path or an s3://bucket/key URL."""
    text(value)
    if value.startswith("s3://"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise _refused(value, "s3://bucket/key or a local path")
        return value
    path(value)
    return value


# SageMaker names: endpoints, models (1-63 characters).
sagemaker_name = matching(SAGEMAKER_NAME_BOUNDED,
                          "1-63 letters, digits and hyphens, starting and ending with a letter or digit")


def capture_destination(value: str) -> str:
    """A folder or an s3://bucket[/prefix] (the prefix may be empty, as a DestinationS3Uri's)."""
    text(value)
    if value.startswith("s3://"):
        if not value.removeprefix("s3://").partition("/")[0]:
            raise _refused(value, "s3://bucket[/prefix] or a local folder")
        return value
    path(value)
    return value


# InvokeEndpoint's InferenceId.
inference_id = matching(r"[\x21-\x7e][\x20-\x7e]{0,63}", "1-64 printable ASCII characters, the first not a space")


def time(value: str) -> datetime:
    """An ISO-8601 time, UTC unless it says otherwise (as SageMaker writes inferenceTime)."""
    try:
        return parse_time(value)
    except ValueError:
        raise _refused(value, "an ISO-8601 time such as 2026-12-06T09:00Z") from None


PORT = whole_number(1, 65535, what="a port")


class _StartOne:
    """The value of an optional-URL option given without a URL (`transform --local`):
    start a local endpoint. Not a string on purpose: argparse runs a string `const`
    through the option's `type`, so "" met the URL check and `--local` alone exited 2."""

    def __repr__(self) -> str:
        return "START_ONE"


START_ONE = _StartOne()


# ------------------------------------------------------------------ environment


def check_aws_environment() -> None:
    """The AWS_* settings botocore reads with a bare int() or urlsplit() (a traceback
    otherwise), checked before any client is made."""
    for name, value in os.environ.items():
        if name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_"):
            try:
                http_url(value)
            except argparse.ArgumentTypeError as error:
                raise CommandError(f"{name}: {error}") from None
    raw = os.environ.get("AWS_MAX_ATTEMPTS")
    if raw is not None:
        try:
            whole_number(1, 100, what="a number of attempts")(raw)
        except argparse.ArgumentTypeError as error:
            raise CommandError(f"AWS_MAX_ATTEMPTS: {error}") from None
