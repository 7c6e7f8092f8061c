"""The write-behind queue (writes in hand-over order, nothing after a failed write, the failure raised) and the
round checkpoints it writes."""

import threading

import numpy as np
import pytest

from components.adapters.checkpoints import RunCheckpoints, save_arrays, save_json
from components.adapters.write_behind import WriteBehind
from components.core.errors import EdgeUnavailable
from components.core.strategies import ClientUpdate


def test_writes_run_in_order_and_a_failure_stops_the_later_ones_and_is_raised():
    writer = WriteBehind()
    done: list[str] = []
    gate = threading.Event()

    def write(name: str) -> None:
        gate.wait(5)
        if name == "model":
            raise OSError("disk full")
        done.append(name)

    for name in ("updates", "model", "finished-mark"):
        writer.submit(write, name)
    gate.set()

    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    assert done == ["updates"]  # the mark after the missing model was never written
    with pytest.raises(OSError, match="disk full"):
        writer.submit(done.append, "next round")
    with pytest.raises(OSError, match="disk full"):
        writer.close()  # stops the thread, and still says a write failed


def test_a_transient_failure_is_tried_again_in_order_before_the_later_writes():
    writer = WriteBehind()
    done: list[str] = []
    faults = iter([EdgeUnavailable("store", "database is locked")])

    def record_round(name: str) -> None:
        if (fault := next(faults, None)) is not None:
            raise fault
        done.append(name)

    writer.submit(record_round, "store row")
    writer.submit(done.append, "finished-mark")
    writer.close()

    assert done == ["store row", "finished-mark"]  # retried, and the mark still came after it


def test_the_finished_mark_reaches_the_disk_only_after_the_rounds_model(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, "run")
    gate = threading.Event()
    checkpoints.writer.submit(gate.wait, 5)  # a slow disk: everything below is queued behind this
    model = {"w": np.arange(3, dtype=np.float32)}

    checkpoints.save_round(1, model, {})
    checkpoints.mark_finished(1, None)

    assert not checkpoints.global_params(1).exists() and not checkpoints.state.exists()
    np.testing.assert_array_equal(checkpoints.load_global(1)["w"], model["w"])  # from memory, not waiting
    model["w"][0] = 9.0  # the caller changes its arrays: the queued write keeps what was saved
    gate.set()
    assert checkpoints.last_round() == 1  # waits for the queued writes
    np.testing.assert_array_equal(np.load(checkpoints.global_params(1))["w"], [0.0, 1.0, 2.0])
    checkpoints.close()


def test_held_writes_wait_for_release_and_keep_their_order():
    writer = WriteBehind()
    done: list[str] = []
    writer.submit(done.append, "before")
    writer.hold()
    writer.submit(done.append, "model")
    writer.submit(done.append, "mark")
    writer.flush()  # a flush releases what is held: nothing is left behind
    assert done == ["before", "model", "mark"]

    writer.hold()
    writer.submit(done.append, "next model")
    assert done == ["before", "model", "mark"]  # kept in memory: the writer thread is idle
    writer.release()
    writer.submit(done.append, "after release")
    writer.close()
    assert done[3:] == ["next model", "after release"]


def test_a_rounds_files_are_written_after_its_evaluation_and_before_its_mark(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, "run")
    model = {"w": np.arange(3, dtype=np.float32)}
    checkpoints.save_round(1, model, {})
    checkpoints.writer.submit(lambda: None)  # e.g. the recorder's row, handed over before the evaluation ends
    assert checkpoints.writer._pending == []  # held while the round is evaluated
    np.testing.assert_array_equal(checkpoints.load_global(1)["w"], model["w"])  # the evaluation reads memory

    checkpoints.evaluated()
    checkpoints.mark_finished(1, None)
    checkpoints.flush()
    assert checkpoints.last_round() == 1 and checkpoints.global_params(1).exists()
    assert not checkpoints.strategy_state(1).exists()  # a stateless strategy leaves no file; it loads as {}
    assert checkpoints.load_strategy_state(1) == {}
    checkpoints.close()


def test_updates_of_a_run_checkpointed_one_file_per_party_still_load(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, "earlier")
    folder = checkpoints.folder / "updates" / "0001"  # the layout before one archive held a round's updates
    save_arrays(folder / "alpha.npz", {"w": np.ones(2, dtype=np.float32)})
    save_arrays(folder / "beta.npz", {"w": np.zeros(2, dtype=np.float32)})
    save_json(folder / "meta.json", {p: {"num_examples": n, "metrics": {}} for p, n in (("alpha", 3), ("beta", 5))})
    checkpoints.save_updates(2, [ClientUpdate("alpha", {"w": np.full(2, 2.0, dtype=np.float32)}, 4)])

    earlier, later = checkpoints.load_updates(1), checkpoints.load_updates(2)
    assert [(u.party, u.num_examples, u.params["w"].tolist()) for u in earlier] == [
        ("alpha", 3, [1.0, 1.0]),
        ("beta", 5, [0.0, 0.0]),
    ]
    assert [(u.party, u.params["w"].tolist()) for u in later] == [("alpha", [2.0, 2.0])]
    assert checkpoints.discard_updates() == 3 and not (checkpoints.folder / "updates").exists()
    checkpoints.close()
