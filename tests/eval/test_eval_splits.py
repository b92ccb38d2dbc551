"""How ``polyroute eval`` splits rows: k folds, repeats, leave one group out, folds over groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyroute.errors import ConfigError, DatasetError
from polyroute.eval import splits
from polyroute.eval.evaluate import folds
from polyroute.eval.io import load_groups
from polyroute.routers.learned._optim import kfold_indices

# 7 groups of uneven size, interleaved
GROUPS = tuple(f"g{(i * 5) % 7}" if i % 3 else f"g{i % 4}" for i in range(90))


def _assert_partition(rounds: tuple[tuple[splits.Fold, ...], ...], n: int) -> None:
    for rnd in rounds:
        judged = np.concatenate([f.test for f in rnd])
        assert sorted(judged.tolist()) == list(range(n))  # every row judged exactly once
        for f in rnd:
            assert np.intersect1d(f.train, f.test).size == 0
            assert sorted([*f.train.tolist(), *f.test.tolist()]) == list(range(n))


def _groups_of(rows: np.ndarray, labels: tuple[str, ...] = GROUPS) -> set[str]:
    return {labels[i] for i in rows.tolist()}


def test_repeated_kfold_judges_every_row_once_per_repeat() -> None:
    how = splits.scheme(50, 5, 3, seed=7)
    assert how.kind == splits.KFOLD
    assert how.seeds == (7, 8, 9)
    assert len(how.rounds) == 3
    assert how.fits == 15
    _assert_partition(how.rounds, 50)
    tests = [[f.test.tolist() for f in rnd] for rnd in how.rounds]
    assert tests[0] != tests[1] != tests[2]  # each repeat draws new folds


def test_one_splitter_repeat_zero_is_plain_cv() -> None:
    how = splits.scheme(40, 4, 2, seed=3)
    plain = [t.tolist() for t in folds(40, 4, seed=3)]
    assert [f.test.tolist() for f in how.rounds[0]] == plain
    assert [t.tolist() for _, t in kfold_indices(40, 4, 3)] == plain  # the routers' splitter
    assert [f.test.tolist() for f in how.rounds[1]] == [t.tolist() for t in folds(40, 4, seed=4)]


def test_splits_are_deterministic_for_a_seed() -> None:
    def as_lists(how: splits.Scheme) -> list[list[list[int]]]:
        return [[f.test.tolist() for f in rnd] for rnd in how.rounds]

    assert as_lists(splits.scheme(60, 3, 2, seed=1)) == as_lists(splits.scheme(60, 3, 2, seed=1))
    grouped = splits.scheme(90, 3, 2, seed=5, groups=GROUPS)
    assert as_lists(grouped) == as_lists(splits.scheme(90, 3, 2, seed=5, groups=GROUPS))
    other = splits.scheme(90, 3, 2, seed=6, groups=GROUPS)
    assert as_lists(grouped) != as_lists(other)


def test_leave_one_group_out_holds_each_group_out_once() -> None:
    how = splits.scheme(90, None, 1, seed=0, groups=GROUPS, field="task")
    assert how.kind == splits.LOGO
    assert how.note == ""
    (rnd,) = how.rounds
    names = sorted(set(GROUPS))
    assert [f.label for f in rnd] == [f"task={g}" for g in names]
    _assert_partition(how.rounds, 90)
    for fold, name in zip(rnd, names, strict=True):
        assert _groups_of(fold.test) == {name}
        assert name not in _groups_of(fold.train)


def test_leave_one_group_out_matches_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.model_selection")
    ours = splits.group_folds(GROUPS, None, seed=0)
    theirs = list(sk.LeaveOneGroupOut().split(np.zeros(90), groups=np.asarray(GROUPS)))
    assert [(f.train.tolist(), f.test.tolist()) for f in ours] == [
        (tr.tolist(), te.tolist()) for tr, te in theirs
    ]


def test_folds_over_groups_never_split_a_group() -> None:
    how = splits.scheme(90, 3, 4, seed=2, groups=GROUPS)
    assert how.kind == splits.GROUP_KFOLD
    assert how.fits == 12
    _assert_partition(how.rounds, 90)
    for rnd in how.rounds:
        held = [_groups_of(f.test) for f in rnd]
        assert sorted(len(h) for h in held) == [2, 2, 3]  # 7 groups in 3 near-equal parts
        for f, h in zip(rnd, held, strict=True):
            assert not h & _groups_of(f.train)  # no group on both sides
        assert set().union(*held) == set(GROUPS)


def test_too_many_groups_fall_back_to_folds_over_groups() -> None:
    labels = tuple(f"t{i % 25}" for i in range(100))
    how = splits.scheme(100, None, 1, seed=0, groups=labels, field="task")
    assert how.kind == splits.GROUP_KFOLD
    assert len(how.rounds[0]) == 5
    assert "25 groups of task" in how.note
    assert "instead of leaving each group out" in how.note
    exactly_20 = tuple(f"t{i % 20}" for i in range(100))
    assert splits.scheme(100, None, 1, seed=0, groups=exactly_20).kind == splits.LOGO


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 10, "cv": 1, "repeats": 1}, "--cv: expected 2 <= K <= 10"),
        ({"n": 10, "cv": 11, "repeats": 1}, "--cv: expected 2 <= K <= 10"),
        ({"n": 10, "cv": 2, "repeats": 0}, "--repeat: expected >= 1, got 0"),
        ({"n": 90, "cv": None, "repeats": 2, "groups": GROUPS}, "leaving one group out has"),
        ({"n": 90, "cv": 8, "repeats": 1, "groups": GROUPS}, "2 <= K <= 7 (number of groups)"),
        ({"n": 3, "cv": None, "repeats": 1, "groups": ("a", "a", "a")}, "one group only ('a')"),
        ({"n": 4, "cv": None, "repeats": 1, "groups": ("a", "b")}, "2 labels for 4 rows"),
    ],
)
def test_bad_schemes_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        splits.scheme(seed=0, **kwargs)  # type: ignore[arg-type]


def _rows(path: Path, rows: list[dict[str, object]]) -> Path:
    base = {"prompt": "p", "scores": {"m": 1}, "costs": {"m": 0.1}}
    lines = [json.dumps({"id": str(i), **base, **r}) for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_groups_reads_any_field(tmp_path: Path) -> None:
    f = _rows(tmp_path / "d.jsonl", [{"src": "a"}, {"src": 3}, {"src": True}, {"src": "a"}])
    assert load_groups(f, "src") == ("a", "3", "true", "a")


@pytest.mark.parametrize(
    ("value", "got"), [({}, "missing"), ({"task": None}, "null"), ({"task": [1]}, "a list")]
)
def test_load_groups_names_the_file_line_and_field(
    tmp_path: Path, value: dict[str, object], got: str
) -> None:
    f = _rows(tmp_path / "d.jsonl", [{"task": "x"}, value])
    with pytest.raises(DatasetError) as err:
        load_groups(f, "task")
    assert str(err.value).startswith(f"{f}:2: field 'task' is {got}; --group-by task needs")
