import math

import pytest

from v2xsim.timing import TimingModel, beam_coherence_time, contact_time, coverage_length, kmh_to_mps


def test_paper_numbers():
    # h = 10 m, phi = 120 deg, 60 km/h: T_contact = 2.08 s, T_coher = 61 ms for W = 34
    speed = kmh_to_mps(60)
    assert contact_time(10.0, math.radians(120), speed) == pytest.approx(2 * 10 * math.tan(math.radians(60)) / speed)
    assert contact_time(10.0, math.radians(120), speed) == pytest.approx(2.078, abs=1e-3)
    assert beam_coherence_time(10.0, math.radians(120), speed, 34) == pytest.approx(0.0611, abs=1e-4)


def test_coherence_time_falls_with_speed_and_beams():
    slow = beam_coherence_time(10.0, 2.0, 5.0, 34)
    assert beam_coherence_time(10.0, 2.0, 10.0, 34) == pytest.approx(slow / 2)
    assert beam_coherence_time(10.0, 2.0, 5.0, 68) == pytest.approx(slow / 2)


def test_table_one_defaults():
    timing = TimingModel()
    assert timing.sweep_time(34) == pytest.approx(20.31e-3)
    assert timing.airtime(442) == pytest.approx(247e-9, rel=1e-6)
    assert timing.airtime(34) == pytest.approx(19e-9, rel=0.01)
    assert timing.airtime(6) == pytest.approx(3.35e-9, rel=0.01)
    assert TimingModel(mac_access_s=1e-5).airtime(0) == pytest.approx(1e-5)


@pytest.mark.parametrize("call,name", [
    (lambda: contact_time(10.0, 2.0, -1.0), "speed_mps"),
    (lambda: contact_time(10.0, 2.0, 0.0), "speed_mps"),
    (lambda: contact_time(0.0, 2.0, 1.0), "height_m"),
    (lambda: contact_time(10.0, math.pi, 1.0), "coverage_angle_rad"),
    (lambda: beam_coherence_time(10.0, 2.0, 1.0, 0), "num_beams"),
    (lambda: coverage_length(10.0, float("nan")), "coverage_angle_rad"),
    (lambda: TimingModel(backchannel_rate_bps=0.0), "backchannel_rate_bps"),
    (lambda: TimingModel().airtime(-1), "bits"),
])
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
