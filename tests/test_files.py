"""Files: atomic writes (the destination is either the old file or the complete new one), JSON."""

import json

import pytest
import torch

from aoi.files import UnreadableFile, atomic_path, read_json, save_torch, write_json, write_text


def test_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    write_text(path, "old")
    write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary left


def test_crash_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_save_torch_round_trip(tmp_path):
    save_torch({"w": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["w"].tolist() == [0, 1, 2]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644


def test_json_stores_nan_and_infinity_as_null(tmp_path):
    write_json(tmp_path / "m.json", {"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_read_json_missing_is_none_and_corrupt_names_the_file(tmp_path):
    assert read_json(tmp_path / "absent.json") is None
    (tmp_path / "half.json").write_text('{"x": ')
    with pytest.raises(UnreadableFile, match="half.json is unreadable .*delete it"):
        read_json(tmp_path / "half.json")
