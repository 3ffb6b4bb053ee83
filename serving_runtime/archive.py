"""The one reader of model and code archives: what the container does with
ModelDataUrl and SAGEMAKER_SUBMIT_DIRECTORY. Used by the preflight, `serve` and the synth.

Three things `tarfile.open(path, "r:gz")` alone does not do, and this does:
- verify the gzip stream: tar stops reading at its end-of-archive blocks, so the gzip
  trailer (CRC-32 and length) of a corrupt or truncated archive is never checked;
  here the stream is read to its end and gzip checks both (as `gzip -t` does; bytes
  after the gzip stream, which `gzip -t` only warns about, are refused too);
- bound what unpacking writes: a 1 MB archive can hold 1 GiB of zeros; the declared
  size of each member (plus its 512-byte entry) is added up *before* it is written, and
  the first member that would pass the limit is refused by name and size;
- refuse unsafe members (absolute paths, `..`, links out of the tree, devices) with
  tarfile's `data` filter.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from serving_runtime.errors import ServingError

# What unpacking one archive may write. The sample fraud model is a few MB and real
# ones tens to a few hundred; a serverless endpoint has at most 6 GB of memory for all of it.
MAX_UNPACKED_BYTES_ENV = "SERVING_MAX_UNPACKED_BYTES"
DEFAULT_MAX_UNPACKED_BYTES = 512 * 1024 * 1024
# The failures of a gzip stream that is not whole: bad magic or CRC (BadGzipFile),
# deflate data that does not decode (zlib.error), a stream cut short (EOFError).
_CORRUPT = (gzip.BadGzipFile, zlib.error, EOFError, tarfile.ReadError)


def max_unpacked_bytes() -> int:
    """The limit from SERVING_MAX_UNPACKED_BYTES, or the default."""
    raw = os.environ.get(MAX_UNPACKED_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_UNPACKED_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ServingError(f"{MAX_UNPACKED_BYTES_ENV}={raw!r}: allowed: a whole number of bytes >= 1 "
                           f"(default {DEFAULT_MAX_UNPACKED_BYTES})")
    return value


def _members(archive: Path, tar: tarfile.TarFile, limit: int) -> Iterator[tarfile.TarInfo]:
    """The members in archive order, refusing the first that would pass `limit`."""
    total = 0
    for member in tar:
        # Each member also costs its 512-byte entry: a million empty files is no cheaper.
        total += member.size + tarfile.BLOCKSIZE
        if total > limit:
            raise ServingError(
                f"{archive}: member {member.name!r} is {member.size:,} bytes, which takes the unpacked size to "
                f"{total:,} bytes, over the limit of {limit:,} ({MAX_UNPACKED_BYTES_ENV} sets it)"
            )
        yield member


def _read(archive: Path, visit: Callable[[tarfile.TarFile, tarfile.TarInfo], None], limit: int | None) -> None:
    """Stream the archive once, calling `visit` on each member, then read the gzip
    stream to its end so its CRC and length are checked."""
    limit = max_unpacked_bytes() if limit is None else limit
    try:
        with gzip.open(archive, "rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in _members(archive, tar, limit):
                    visit(tar, member)
            while stream.read(1 << 20):  # the rest: tar padding, then the gzip trailer
                pass
    except _CORRUPT as error:
        raise ServingError(
            f"{archive} is not a gzip tar archive, or is truncated or corrupt ({type(error).__name__}: {error}); "
            "SageMaker extracts it as tar.gz"
        ) from None
    except tarfile.FilterError as error:
        raise ServingError(f"{archive} holds an unsafe member: {error}") from None
    except tarfile.StreamError as error:  # a hard link to an earlier member, in one pass
        raise ServingError(f"{archive} holds a member that cannot be unpacked in one pass: {error}") from None
    except OSError as error:  # the disk, not the archive: still one line, naming both
        raise ServingError(f"cannot unpack {archive}: {error}") from None


def safe_extract(archive: Path, destination: Path, *, limit: int | None = None) -> None:
    """Extract a gzip tar whole and verified, within the size limit, with safe members only."""
    _read(archive, lambda tar, member: tar.extract(member, destination, filter="data"), limit)


def archive_files(archive: Path, *, limit: int | None = None) -> list[tuple[str, bytes]]:
    """(name without './', content) of each regular file, read as `safe_extract` reads."""
    files: list[tuple[str, bytes]] = []

    def keep(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if member.isfile():
            files.append((member.name.removeprefix("./"), tar.extractfile(member).read()))  # type: ignore[union-attr]

    _read(archive, keep, limit)
    return files


def unpack_model(model_data: Path, model_dir: Path, *, limit: int | None = None) -> Path:
    """What the container does with ModelDataUrl: extract it into /opt/ml/model."""
    if not model_data.is_file():
        raise ServingError(f"model data {model_data} " + ("is not a file" if model_data.exists() else "does not exist"))
    model_dir.mkdir(parents=True, exist_ok=True)
    safe_extract(model_data, model_dir, limit=limit)
    return model_dir


def prepare_code(code: Path, workdir: Path) -> Path:
    """SAGEMAKER_SUBMIT_DIRECTORY: a folder is used as it is, a tar.gz is extracted."""
    if code.is_dir():
        return code
    if code.is_file():
        target = workdir / "code"
        target.mkdir(parents=True, exist_ok=True)
        safe_extract(code, target)
        return target
    raise ServingError(f"handler code {code} is neither a folder nor a .tar.gz file")
