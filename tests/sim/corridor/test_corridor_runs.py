"""Whole corridor runs with real local training: determinism, resume after a kill, and
the same FL timeline with full and sampled beam alignment."""

from __future__ import annotations

import csv

import pytest
import torch

from v2xsim.errors import ConfigError
from v2xsim.sim.corridor.config import corridor_from_dict
from v2xsim.sim.corridor.run import Point, run_point

SMALL_MODEL = {"hidden": 32, "features": {"gps": 16, "image": 16, "lidar": 16}}


def scenario(**fl):
    return corridor_from_dict({
        "duration_s": 20.0, "corridor": {"length_m": 200.0}, "rsus": [{"x_m": 50.0}, {"x_m": 120.0}],
        "traffic": {"vehicles": 6, "speed_kmh": 60.0, "image_share": 0.5},
        "alignment": {"record_every": 2}, "evaluation": {"enabled": False}, "model": SMALL_MODEL,
        "fl": {"rounds": 3, "deadline_s": 2.0, "min_samples": 4, "max_samples": 24, "batch_size": 8, **fl}})


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_same_seed_same_rounds_events_and_weights(tmp_path, mode):
    options = {"mode": mode, "buffer_size": 2, "concurrency": 3} if mode == "async" else {}
    first = run_point(Point(scenario(**options)), tmp_path / "a", quiet=True)
    second = run_point(Point(scenario(**options)), tmp_path / "b", quiet=True)
    for name in ("rounds.csv", "events.csv", "rsus.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a, b = (torch.load(tmp_path / d / "model.pt")["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first["rounds_done"] == 3 and first["effective_sum_rate"] == second["effective_sum_rate"]
    table = rows(tmp_path / "a" / "rounds.csv")
    assert [int(r["round"]) for r in table] == [1, 2, 3]
    assert all(int(r["completed"]) + int(r["failed"]) <= int(r["selected"]) for r in table)
    other = run_point(Point(scenario(**options), seed=1), tmp_path / "c", quiet=True)
    assert (tmp_path / "c" / "events.csv").read_bytes() != (tmp_path / "a" / "events.csv").read_bytes()
    assert other["rounds_done"] == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_killed_run_resumes_to_the_same_result(tmp_path, mode):
    options = {"mode": mode, "buffer_size": 2, "concurrency": 3} if mode == "async" else {}
    point = Point(scenario(**options))
    run_point(point, tmp_path / "whole", quiet=True)
    stopped = run_point(point, tmp_path / "killed", quiet=True, stop_after_rounds=1)
    assert stopped["rounds_done"] == 1 and not stopped["complete"]
    assert not (tmp_path / "killed" / "model.pt").exists()
    resumed = run_point(point, tmp_path / "killed", quiet=True)
    assert resumed["complete"]
    assert (tmp_path / "whole" / "rounds.csv").read_bytes() == (tmp_path / "killed" / "rounds.csv").read_bytes()
    assert (tmp_path / "whole" / "events.csv").read_bytes() == (tmp_path / "killed" / "events.csv").read_bytes()
    a, b = (torch.load(tmp_path / d / "model.pt")["model"] for d in ("whole", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_another_point_is_refused(tmp_path):
    run_point(Point(scenario()), tmp_path, quiet=True, stop_after_rounds=1)
    with pytest.raises(ConfigError, match="another corridor point"):
        run_point(Point(scenario(), seed=3), tmp_path, quiet=True)


def test_full_and_sampled_alignment_give_the_same_fl_timeline(tmp_path):
    """Sampling the alignment's rate evaluation changes no event: the FL timeline (every
    event, every round row) is the same; only the effective sum rate is an estimate."""
    full = corridor_from_dict({**scenario().model_dump(mode="json", exclude={"source_dir"}),
                               "alignment": {"record_every": 2, "mode": "full"}})
    sampled = corridor_from_dict({**scenario().model_dump(mode="json", exclude={"source_dir"}),
                                  "alignment": {"record_every": 2, "mode": "sampled", "sample_every": 4}})
    a = run_point(Point(full), tmp_path / "full", quiet=True)
    b = run_point(Point(sampled), tmp_path / "sampled", quiet=True)
    assert (tmp_path / "full" / "events.csv").read_bytes() == (tmp_path / "sampled" / "events.csv").read_bytes()
    assert (tmp_path / "full" / "rounds.csv").read_bytes() == (tmp_path / "sampled" / "rounds.csv").read_bytes()
    a_model, b_model = (torch.load(tmp_path / d / "model.pt")["model"] for d in ("full", "sampled"))
    assert all(torch.equal(a_model[k], b_model[k]) for k in a_model)  # the same labels were recorded
    cycles = [rows(tmp_path / d / "rsus.csv") for d in ("full", "sampled")]
    assert [r["cycles"] for r in cycles[0]] == [r["cycles"] for r in cycles[1]]
    assert all(int(s["evaluated_cycles"]) < int(f["evaluated_cycles"]) for f, s in zip(*cycles))
    assert b["effective_sum_rate"] == pytest.approx(a["effective_sum_rate"], rel=0.3)
