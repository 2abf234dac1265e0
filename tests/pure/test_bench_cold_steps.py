"""tools/bench_cold.py steps(): the table of steps from time-stamped output lines (made up here
in the shape forkdiff and the Makefile print them)."""

from tools.bench_cold import steps


def test_a_label_built_again_after_done_is_a_new_step():
    lines = [
        (0.0, "forkdiff kernel baseline/faults: configure: tinyconfig [0m00s]"),
        (1.0, "forkdiff kernel baseline/perf: configure: tinyconfig [0m00s]"),
        (50.0, "forkdiff kernel baseline/faults: done: /c/k/1/bzImage [0m50s]"),
        (60.0, "forkdiff kernel baseline/perf: done: /c/k/2/bzImage [0m59s]"),
        (61.0, 'python3 -m pytest -q -rs --durations=40 -m "not pure and not host" tests'),
        (70.0, "forkdiff kernel baseline/faults: configure: tinyconfig [0m00s]"),
        (75.0, "forkdiff kernel baseline/faults: done: /c/k/3/bzImage [0m05s]"),
        (100.0, "<end>"),
    ]
    assert steps(lines) == [
        ("kernel baseline/faults", 50.0),
        ("kernel baseline/perf", 59.0),
        ('pytest -m "not pure and not host"', 39.0),
        ("kernel baseline/faults #2", 5.0),
    ]
