"""``with ds:`` as in Deep Lake v3: a block of writes committed at its end, any number of
blocks on one dataset object; and, as lakefs users rely on, the writer lock released at
the end of each block, so another writer can open the dataset between them. A write
after a block takes the lock again; only ``close()`` closes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lakefs
from lakefs.errors import DatasetClosedError, LockedError, ReadOnlyError, TensorNotFoundError

REPO = Path(__file__).resolve().parents[2]

OTHER_PROCESS = """
import sys
sys.path.insert(0, {repo!r})
import lakefs
with lakefs.load({path!r}) as ds:
    ds.x.append(20)
"""


def _values(path: Path) -> list[int]:
    with lakefs.load(path, read_only=True) as ro:
        return [s.numpy().item() for s in ro.x]


def test_two_with_blocks_on_one_dataset_both_write(dataset_path: Path) -> None:
    """The QA's port of Deep Lake's tutorial: the second block's first write raised
    ``ReadOnlyError: the dataset is closed``."""
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64")
        ds.x.append(1)
    assert _values(dataset_path) == [1]  # committed at the block's end
    with ds:
        ds.x.append(2)
        ds.x.extend([3, 4])
    assert _values(dataset_path) == [1, 2, 3, 4]
    with ds:
        pass  # a block without writes takes no lock
    ds.x.append(5)  # outside a block as well
    ds.close()
    assert _values(dataset_path) == [1, 2, 3, 4, 5]


def test_the_lock_is_free_between_blocks_for_another_process(dataset_path: Path) -> None:
    ds = lakefs.empty(dataset_path)
    with ds:
        x = ds.create_tensor("x", dtype="int64")
        x.append(1)
    assert ds.x[0].numpy().item() == 1  # reads between blocks
    other = subprocess.run([sys.executable, "-c", OTHER_PROCESS.format(repo=str(REPO), path=str(dataset_path))],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 0, other.stderr
    assert len(ds.x) == 1  # still its own last commit, until it writes again
    with ds:
        ds.x.append(3)  # takes the lock and the other writer's commit
    assert _values(dataset_path) == [1, 20, 3]
    assert [s.numpy().item() for s in ds.x] == [1, 20, 3]
    ds.close()


def test_a_write_between_blocks_waits_for_no_one_but_is_refused_while_another_writes(dataset_path: Path) -> None:
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
    x = ds.x
    other = lakefs.load(dataset_path)  # in this process too: the lock is free
    other.x.append(2)
    with pytest.raises(LockedError, match="open for writing"):
        ds.x.append(3)
    assert [s.numpy().item() for s in ds.x] == [1]  # reads go on
    other.close()
    x.append(3)  # a tensor taken before the block: writes once the lock is free again
    ds.close()
    assert _values(dataset_path) == [1, 2, 3]


def test_a_block_that_raises_still_commits_and_releases(dataset_path: Path) -> None:
    ds = lakefs.empty(dataset_path)
    with pytest.raises(ZeroDivisionError), ds:
        ds.create_tensor("x", dtype="int64").append(1)
        1 / 0  # noqa: B018
    with lakefs.load(dataset_path) as other:  # released
        other.x.append(2)
    assert _values(dataset_path) == [1, 2]


def test_a_closed_dataset_says_so_and_how_to_open_it_again(dataset_path: Path) -> None:
    ds = lakefs.empty(dataset_path)
    ds.create_tensor("x", dtype="int64").append(1)
    ds.close()
    with pytest.raises(DatasetClosedError, match=r"closed.*lakefs\.load\(") as e:
        ds.x.append(2)
    assert isinstance(e.value, ReadOnlyError)  # (what code written before catches)
    with pytest.raises(DatasetClosedError):
        ds.create_tensor("y")
    with pytest.raises(DatasetClosedError):
        with ds:
            ds.x.append(2)
    assert ds.x[0].numpy().item() == 1  # reads still work
    assert _values(dataset_path) == [1]


def test_a_write_after_a_block_is_committed_at_exit(dataset_path: Path) -> None:
    """Taking the lock again tracks the dataset again for the commit at interpreter exit."""
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
import lakefs
ds = lakefs.empty({str(dataset_path)!r})
with ds:
    ds.create_tensor("x", dtype="int64").append(1)
ds.x.append(2)
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "committed at exit" in p.stderr, p.stderr
    assert _values(dataset_path) == [1, 2]


def _in_another_process(script: str) -> None:
    p = subprocess.run([sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(REPO)!r})\nimport lakefs\n"
                        + script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


WRITES = {
    "append": lambda ds: ds.x.append(9),
    "extend": lambda ds: ds.x.extend([9, 9]),
    "setitem": lambda ds: ds.x.__setitem__(0, 9),
    "row setitem": lambda ds: ds[0].__setitem__("x", 9),
    "pop": lambda ds: ds.x.pop(0),
    "info.update": lambda ds: ds.x.info.update(note="mine"),
}
ELSEWHERE = {
    "deleted": "ds.delete_tensor('x')",
    "deleted and created again": "ds.delete_tensor('x'); ds.create_tensor('x', dtype='int64').append(7)",
}


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("elsewhere", ELSEWHERE)
def test_a_write_to_a_tensor_another_writer_deleted_between_blocks_is_refused(
        dataset_path: Path, write: str, elsewhere: str) -> None:
    """QA: ``ds.x`` was resolved from the state before the write's reopen, and the write
    "succeeded" into a tensor no commit holds any more: lost without an error."""
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
    held = ds.x
    _in_another_process(f"with lakefs.load({str(dataset_path)!r}) as ds:\n    {ELSEWHERE[elsewhere]}")
    with pytest.raises(TensorNotFoundError, match="another writer"):
        WRITES[write](ds)
    with pytest.raises(TensorNotFoundError):
        held.append(9)
    recreated = elsewhere != "deleted"
    assert ("x" in ds.tensors) == recreated  # ds moved to the other writer's commit
    if recreated:
        ds.x.append(8)  # taken again: the new tensor
    ds.close()
    with lakefs.load(dataset_path, read_only=True) as ro:
        assert ("x" in ro.tensors) == recreated
        if recreated:
            assert [s.numpy().item() for s in ro.x] == [7, 8]
            assert "note" not in ro.x.info


def test_a_write_to_a_tensor_of_a_group_deleted_between_blocks_is_refused(dataset_path: Path) -> None:
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_group("g")
        ds.create_tensor("g/x", dtype="int64").append(1)
    _in_another_process(f"with lakefs.load({str(dataset_path)!r}) as ds:\n    ds.delete_group('g', recursive=True)")
    with pytest.raises(TensorNotFoundError):
        ds.g.x.append(2)
    assert list(ds.tensors) == []
    ds.close()


def test_a_write_to_a_tensor_of_a_dataset_created_again_between_blocks_is_refused(dataset_path: Path) -> None:
    """Another process's ``empty(overwrite=True)``: every handle belongs to a dataset that
    is gone, even one of the same name whose id happens to be reused."""
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
    held = ds.x
    _in_another_process(f"ds = lakefs.empty({str(dataset_path)!r}, overwrite=True)\n"
                        "ds.create_tensor('x', dtype='int64').append(7)\nds.close()")
    with pytest.raises(TensorNotFoundError, match="created again"):
        ds.x.append(2)
    with pytest.raises(TensorNotFoundError, match="created again"):
        held.append(2)
    ds.x.append(8)  # the new dataset's tensor
    ds.close()
    with lakefs.load(dataset_path, read_only=True) as ro:
        assert [s.numpy().item() for s in ro.x] == [7, 8]


def test_info_update_through_a_deleted_tensor_is_refused(dataset_path: Path) -> None:
    """In one process too: the handle's info went on changing a tensor no commit holds."""
    ds = lakefs.empty(dataset_path)
    x = ds.create_tensor("x", dtype="int64")
    ds.delete_tensor("x")
    with pytest.raises(TensorNotFoundError):
        x.info.update(note="mine")
    ds.close()


def test_only_the_outermost_of_nested_blocks_commits_and_releases(dataset_path: Path) -> None:
    """QA: the inner block's end committed and released the lock mid-outer-block, letting
    another writer in. As Deep Lake, which flushes only at the outermost block's end."""
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
        with ds:
            ds.x.append(2)
        assert ds.has_changes  # not committed yet
        with pytest.raises(LockedError):
            lakefs.load(dataset_path)  # still this block's writer
        ds.x.append(3)
    assert not ds.has_changes
    with lakefs.load(dataset_path) as other:  # released at the outer end
        other.x.append(4)
    ro = lakefs.load(dataset_path, read_only=True)
    with ro:
        with ro:
            pass
        assert [s.numpy().item() for s in ro.x] == [1, 2, 3, 4]
        assert not ro.refresh()  # still open
    with pytest.raises(DatasetClosedError):
        ro.refresh()
    ds.close()


def test_refresh_between_blocks_moves_a_writable_dataset_to_another_writers_commit(dataset_path: Path) -> None:
    """QA: it returned False and reads stayed stale, while another writer had committed."""
    ds = lakefs.empty(dataset_path)
    with ds:
        ds.create_tensor("x", dtype="int64").append(1)
        ds.create_tensor("y", dtype="int64").append(1)
        assert not ds.refresh()  # holding the lock: its own latest commit
    x, y = ds.x, ds.y
    assert not ds.refresh()  # nothing new
    _in_another_process(f"with lakefs.load({str(dataset_path)!r}) as ds:\n    ds.x.append(20)\n"
                        "    ds.delete_tensor('y')")
    assert ds.refresh()
    assert [s.numpy().item() for s in ds.x] == [1, 20]
    assert [s.numpy().item() for s in x] == [1, 20]  # the tensors taken before move too
    assert "y" not in ds.tensors
    with pytest.raises(TensorNotFoundError):
        y.append(2)
    assert not ds.refresh()
    x.append(3)
    ds.close()
    assert _values(dataset_path) == [1, 20, 3]
    with pytest.raises(DatasetClosedError):
        ds.refresh()


def test_a_read_only_dataset_closed_by_its_block_says_so(dataset_path: Path) -> None:
    """QA: its refresh() said "(close() was called)" though only the block had ended."""
    lakefs.empty(dataset_path).close()
    with lakefs.load(dataset_path, read_only=True) as ro:
        pass
    with pytest.raises(DatasetClosedError, match=r"its `with` block ended.*lakefs\.load\("):
        ro.refresh()
    ro = lakefs.load(dataset_path, read_only=True)
    with ro:
        ro.close()
    with pytest.raises(DatasetClosedError, match=r"close\(\) was called"):
        ro.refresh()
