"""Byte-for-byte reproducible gzip tarballs, in the form the sklearn container reads.

The container downloads SAGEMAKER_SUBMIT_DIRECTORY and extracts it as a gzip tar with
the entry point at the archive root; a CDK directory asset would be a zip and fail at
container start. A tarball built with plain `tarfile` embeds file mtimes and the gzip
header's time, so two synths of unchanged code would give two asset hashes, and every
`cdk deploy` would replace the model. Here every varying field is fixed.

The synth (constructs) and `endpointctl train-sample` both write archives with it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
from pathlib import Path

# Files that never belong in a handler bundle (and would change its hash).
EXCLUDED_NAMES = {"__pycache__", ".pytest_cache", ".DS_Store", ".ipynb_checkpoints"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def bundle_files(source_dir: Path) -> list[Path]:
    """The files a bundle of `source_dir` holds, sorted so the archive order is stable."""
    files = []
    for path in sorted(source_dir.rglob("*")):
        relative = path.relative_to(source_dir)
        if any(part in EXCLUDED_NAMES for part in relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
            continue
        if path.is_file():
            files.append(path)
    return files


def reproducible_targz(entries: list[tuple[str, bytes]]) -> bytes:
    """A gzip tar of (archive name, content) pairs with zeroed times and owners."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of the path and the clock.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def bundle_entries(source_dir: Path, prefix: str = "") -> list[tuple[str, bytes]]:
    """(archive name, content) of `source_dir`'s files, named from the archive root or
    under `prefix` (e.g. 'code/')."""
    entries = [(prefix + p.relative_to(source_dir).as_posix(), p.read_bytes()) for p in bundle_files(source_dir)]
    if not entries:
        raise ValueError(f"{source_dir} holds no files to bundle")
    return entries


def source_bundle_bytes(source_dir: Path) -> bytes:
    """`source_dir`'s files at the archive root: what SAGEMAKER_SUBMIT_DIRECTORY holds."""
    return reproducible_targz(bundle_entries(source_dir))


def write_content_addressed(data: bytes, name: str) -> Path:
    """Write `data` once under a path named by its hash, so repeated synths reuse it."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / "sagemaker-serving-bundles" / digest
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path
