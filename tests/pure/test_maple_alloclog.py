"""simulator.maple.AllocLog: the packed allocation log gives back exactly the records put in."""

from __future__ import annotations

import pytest

from simulator.maple import AllocLog, AllocRecord


def test_round_trip_and_list_behaviour() -> None:
    recs = [AllocRecord("store", "single", 1, 0), AllocRecord("bstore", "bulk", 7, 3),
            AllocRecord("dup", "free", (1 << 32) - 1, 51_221),
            AllocRecord("replace", "fail_single", 0, (1 << 23) + 5),
            AllocRecord("a-new-op", "fail_bulk", 12, 9)]  # an op name the module never used
    log = AllocLog(recs[:2])
    log.append(recs[2])
    log.extend(recs[3:])
    assert len(log) == 5 and list(log) == recs and log == recs and log == AllocLog(recs)
    assert [log[i] for i in range(5)] == recs and log[-1] == recs[-1]
    assert log[1:3] == recs[1:3] and log + [recs[0]] == recs + [recs[0]]
    assert [r.is_check for r in log] == [True, True, False, True, True]
    assert log != recs[:4] and log != AllocLog(recs[:4])


@pytest.mark.parametrize("bad", [AllocRecord("store", "single", 1 << 32, 0),
                                 AllocRecord("store", "single", -1, 0),
                                 AllocRecord("store", "single", 1, -2)])
def test_out_of_range_records_are_refused(bad: AllocRecord) -> None:
    with pytest.raises(ValueError, match="out of range"):
        AllocLog([bad])
