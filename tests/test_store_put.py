"""Put rules that sit beside the contract suite: names that collide inside one put."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitstore import InputError, InvalidNameError, Store


def test_a_name_given_twice_in_one_put_is_refused(disk_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"from the folder")
    with pytest.raises(InvalidNameError, match=r"out/a\.txt"):
        disk_store.put("s/t", {"out": folder, "out/a.txt": b"explicit"})
    assert disk_store.heads() == {}


def test_check_put_refuses_what_put_would_refuse_without_a_store(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError):
        Store.check_put("s/t", {"../x": b"bytes"})
    with pytest.raises(InputError):
        Store.check_put("s/t", {"log": tmp_path / "missing.log"})
    Store.check_put("s/t", {"log": b"fine"})
    assert list(tmp_path.iterdir()) == []
