"""The one archive reader (serving_runtime.archive), used by the preflight, `serve` and
the synth: whole gzip streams only, a limit on what unpacking writes, safe members."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from serving_runtime.archive import (
    DEFAULT_MAX_UNPACKED_BYTES,
    MAX_UNPACKED_BYTES_ENV,
    archive_files,
    max_unpacked_bytes,
    safe_extract,
)
from serving_runtime.bundle import reproducible_targz
from serving_runtime.errors import ServingError
from tests.conftest import ROOT, tar_bytes


def corruptions(good: bytes) -> dict[str, bytes]:
    """The ways a model.tar.gz arrives broken; tarfile alone accepts the CRC-corrupt one."""
    middle = len(good) // 2
    return {
        "truncated": good[: len(good) - 100],
        "without its trailer": good[:-8],
        "a wrong CRC": good[:-8] + bytes([good[-8] ^ 1]) + good[-7:],
        "a wrong length": good[:-1] + bytes([good[-1] ^ 1]),
        "a flipped byte inside": good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1:],
        "bytes after the gzip stream": good + b"garbage",
        "a zip": b"PK\x03\x04" + bytes(40),
        "empty": b"",
    }


@pytest.fixture(scope="module")
def good_archive(sample_model) -> bytes:
    return sample_model.read_bytes()


def test_tarfile_alone_accepts_a_wrong_crc_and_this_reader_does_not(good_archive, tmp_path):
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(corruptions(good_archive)["a wrong CRC"])
    with tarfile.open(broken, "r:gz") as tar:  # why the reader drains the stream
        tar.extractall(tmp_path / "tarfile", filter="data")
    with pytest.raises(ServingError, match="truncated or corrupt .BadGzipFile: CRC check failed"):
        safe_extract(broken, tmp_path / "ours")


@pytest.mark.parametrize("kind", list(corruptions(b"x" * 300)))
def test_every_corruption_is_refused_in_one_line(good_archive, tmp_path, kind):
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(corruptions(good_archive)[kind])
    for read in (lambda: safe_extract(broken, tmp_path / "out"), lambda: archive_files(broken)):
        with pytest.raises(ServingError) as caught:
            read()
        message = str(caught.value)
        assert "is not a gzip tar archive, or is truncated or corrupt" in message and "\n" not in message


def test_the_size_limit_refuses_the_member_by_name_and_size_before_writing_it(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes({"model.joblib": b"m" * 1000, "filler": bytes(5_000_000)})))
    assert archive.stat().st_size < 10_000  # a bomb: 5 MB from a few KB
    with pytest.raises(ServingError) as caught:
        safe_extract(archive, tmp_path / "out", limit=1_000_000)
    assert str(caught.value) == (
        f"{archive}: member 'filler' is 5,000,000 bytes, which takes the unpacked size to 5,002,024 bytes, "
        f"over the limit of 1,000,000 ({MAX_UNPACKED_BYTES_ENV} sets it)")
    assert not (tmp_path / "out" / "filler").exists()  # checked before writing, not after
    safe_extract(archive, tmp_path / "roomy", limit=6_000_000)
    assert (tmp_path / "roomy" / "filler").stat().st_size == 5_000_000


def test_many_empty_members_count_too(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes({f"empty-{i}": b"" for i in range(3000)})))
    with pytest.raises(ServingError, match="member 'empty-1953' is 0 bytes"):
        safe_extract(archive, tmp_path / "out", limit=1_000_000)


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_UNPACKED_BYTES_ENV, raising=False)
    assert max_unpacked_bytes() == DEFAULT_MAX_UNPACKED_BYTES >= 256 * 1024 * 1024  # well above a fraud model
    monkeypatch.setenv(MAX_UNPACKED_BYTES_ENV, "1234")
    assert max_unpacked_bytes() == 1234
    for bad in ("abc", "0", "-5", "1e9"):
        monkeypatch.setenv(MAX_UNPACKED_BYTES_ENV, bad)
        with pytest.raises(ServingError, match=f"{MAX_UNPACKED_BYTES_ENV}='{bad}': allowed: a whole number of bytes >= 1"):
            max_unpacked_bytes()


def test_unsafe_members_are_refused(tmp_path):
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes({"../escape": b"x"})))
    with pytest.raises(ServingError, match="holds an unsafe member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def preflight(model_data: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "endpointctl", "preflight", "--model-data", str(model_data)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})


def test_preflight_uses_the_same_reader(good_archive, tmp_path):
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(corruptions(good_archive)["a wrong CRC"])
    result = preflight(corrupt)
    assert result.returncode == 1 and "CRC check failed" in result.stdout and "Traceback" not in result.stderr
    # A valid model beside a filler: accepted under the default, refused under a small limit.
    members = dict(archive_files_of(good_archive, tmp_path))
    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(reproducible_targz([*members.items(), ("filler", bytes(3_000_000))]))
    assert preflight(padded).returncode == 0
    result = preflight(padded, **{MAX_UNPACKED_BYTES_ENV: "2000000"})
    assert result.returncode == 1 and "member 'filler' is 3,000,000 bytes" in result.stdout


def archive_files_of(data: bytes, tmp_path: Path) -> list[tuple[str, bytes]]:
    path = tmp_path / "source.tar.gz"
    path.write_bytes(data)
    return archive_files(path)


def test_the_synths_repack_uses_the_same_reader(good_archive, tmp_path):
    from sagemaker_serving.model import SourceBundle, model_with_code

    corrupt = tmp_path / "model.tar.gz"
    corrupt.write_bytes(corruptions(good_archive)["a wrong CRC"])
    with pytest.raises(ServingError, match="CRC check failed"):
        model_with_code(corrupt, SourceBundle.from_directory(ROOT / "inference"))
