"""nanoct.config and the Tiled configuration nanoct serves (no server started here)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections import namedtuple

import numpy as np
import pytest

from nanoct.config import (
    DatabaseURIError,
    DataDirError,
    DataLayout,
    InsufficientDiskSpaceError,
    check_disk_space,
    expected_scan_bytes,
    load_or_create_api_key,
    normalize_database_uri,
    resolve_data_dir,
)
from nanoct.server import is_loopback, tiled_config


def test_data_dir_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NANOCT_DATA_DIR", str(tmp_path / "d"))
    layout = DataLayout.of()
    assert layout.root == (tmp_path / "d").resolve()
    assert layout.catalog_path == layout.root / "tiled" / "catalog.db"
    assert layout.api_key_path.parent == layout.server_dir


def test_resolve_data_dir_creates_it_or_says_why(tmp_path):
    layout = resolve_data_dir(tmp_path / "new" / "data")
    assert layout.root.is_dir()
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(DataDirError, match="exists but is not a directory"):
        resolve_data_dir(f)
    with pytest.raises(DataDirError, match=r"cannot be created: Not a directory"):
        resolve_data_dir(f / "data")


def test_api_key_is_made_once_with_owner_only_permissions(tmp_path):
    path = tmp_path / "server" / "api_key"
    key = load_or_create_api_key(path)
    assert len(key) == 64 and key.isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_api_key(path) == key  # reused, not regenerated
    given = load_or_create_api_key(path, "MyOwnKey12345")
    assert given == "MyOwnKey12345" and load_or_create_api_key(path) == given
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_api_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "api_key"
    load_or_create_api_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="must not be readable by group or others"):
        load_or_create_api_key(path)
    with pytest.raises(ValueError, match="at least 8 ASCII letters or digits"):
        load_or_create_api_key(tmp_path / "k2", "short")
    with pytest.raises(ValueError, match="letters or digits"):
        load_or_create_api_key(tmp_path / "k3", "has-a-dash-123")


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("postgresql://u:p@db.lab:5432/nanoct", "postgresql://u:p@db.lab:5432/nanoct"),
        ("postgres://u@localhost/nanoct", "postgresql://u@localhost/nanoct"),
        ("postgresql+asyncpg://u@localhost/nanoct", "postgresql://u@localhost/nanoct"),
        ("sqlite:////abs/catalog.db", "sqlite:////abs/catalog.db"),
    ],
)
def test_database_uris_accepted(uri, expected):
    assert normalize_database_uri(uri) == expected


@pytest.mark.parametrize(
    "uri, message",
    [
        ("postgresql://", "no host"),
        ("postgresql://localhost", "no database name"),
        ("postgresql://u:secret@localhost:99999/db", "out of range"),
        ("postgresql://u:secret@localhost:abc/db", "malformed"),
        ("oracle://u@h/db", "unsupported database URI"),
        ("sqlite://", "no file"),
    ],
)
def test_database_uris_refused_with_the_reason(uri, message):
    with pytest.raises(DatabaseURIError, match=message) as err:
        normalize_database_uri(uri)
    assert "secret" not in str(err.value)  # passwords never appear in messages


def test_expected_scan_bytes():
    n = expected_scan_bytes(1620, (512, 512), np.float32)
    assert 1620 * 512 * 512 * 4 < n < 1.03 * 1620 * 512 * 512 * 4 + 65536
    with pytest.raises(ValueError, match="n_images"):
        expected_scan_bytes(-1, (2, 2))
    with pytest.raises(ValueError, match="image_shape"):
        expected_scan_bytes(1, (0, 2))


def test_check_disk_space_passes_or_fails_clearly(tmp_path, monkeypatch):
    need = check_disk_space(tmp_path / "not-yet" / "there", n_images=2, image_shape=(8, 8))
    assert need == expected_scan_bytes(2, (8, 8))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 9 << 30, 2 << 30))
    with pytest.raises(InsufficientDiskSpaceError) as err:
        check_disk_space(tmp_path, n_images=1620, image_shape=(2048, 2048))
    msg = str(err.value)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert "not enough disk space" in msg and "25.8 GiB" in msg and "2.0 GiB are free" in msg
    assert str(tmp_path) in msg
    # the reserve counts: 0.5 GiB of images + 1 GiB reserve do not fit in 1.2 GiB
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 9 << 30, 1.2 * 2**30))
    with pytest.raises(InsufficientDiskSpaceError, match=r"reserve of 1\.0 GiB"):
        check_disk_space(tmp_path, n_images=500, image_shape=(512, 512))
    check_disk_space(tmp_path, n_images=500, image_shape=(512, 512), reserve_bytes=0)


def test_tiled_config_serves_runs_from_the_data_directory(tmp_path):
    layout = DataLayout.of(tmp_path)
    c = tiled_config(layout)
    cat = c["catalog"]
    assert cat["uri"] == f"sqlite:///{layout.catalog_path}"
    assert cat["writable_storage"] == [str(layout.zarr_dir), f"sqlite:///{layout.tables_path}"]
    assert cat["readable_storage"] == [str(layout.root)]
    assert cat["specs"] == [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}]
    assert c["media_types"]["BlueskyRun"]["application/json-seq"].endswith(":json_seq_exporter")
    assert c["authentication"] == {"allow_anonymous_access": False}
    assert c["uvicorn"]["host"] == "127.0.0.1"
    pg = tiled_config(layout, database="postgres://u@h/db", public_read=True)
    assert pg["catalog"]["uri"] == "postgresql://u@h/db"
    assert pg["catalog"]["writable_storage"][1] == "postgresql://u@h/db"
    assert pg["authentication"]["allow_anonymous_access"] is True


def test_tiled_accepts_the_configuration(tmp_path):
    """The written config.yml is valid for tiled itself (``tiled serve config`` would run it)."""
    from tiled.config import parse_configs

    from nanoct.server import write_config_file

    layout = DataLayout.of(tmp_path)
    path = write_config_file(layout, tiled_config(layout))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parsed = parse_configs(path)
    assert parsed.trees[0].args["uri"] == f"sqlite:///{layout.catalog_path}"


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
