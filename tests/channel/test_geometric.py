import math

import numpy as np
import pytest

from v2xsim.channel.base import ChannelModel
from v2xsim.channel.codebook import beam_angles, ula_response
from v2xsim.channel.geometric import GeometricChannel
from v2xsim.metrics import rss_vector
from v2xsim.geometry import Boxes, RoadLayout, on_ground, random_drop


def los_only(**kwargs) -> GeometricChannel:
    return GeometricChannel(ground_reflection=False, num_scatterers=0,
                            layout=RoadLayout(buildings=False), **kwargs)


def test_implements_the_protocol():
    assert isinstance(GeometricChannel(), ChannelModel)


@pytest.mark.parametrize("x", [-17.0, -5.0, 0.0, 3.0, 12.0, 60.0, 400.0])
def test_los_power_is_free_space_plus_oxygen(x):
    channel = los_only()
    rx = np.array([[x, 5.25, 1.6]])
    h = channel.channels(rx)
    distance = np.linalg.norm(rx[0] - channel.layout.rsu_position)
    wavelength = 299_792_458.0 / 60e9
    expected_db = 20 * math.log10(wavelength / (4 * math.pi * distance)) - 15.0 * distance / 1000
    measured_db = 10 * math.log10(np.sum(np.abs(h) ** 2) / channel.num_antennas)
    assert measured_db == pytest.approx(expected_db, abs=0.5)


@pytest.mark.parametrize("kind,loss", [("pedestrian", 23.0), ("truck", 35.0), ("parked_car", 12.0)])
def test_box_on_the_los_segment_costs_the_configured_loss(kind, loss):
    channel = los_only(blockage_db={kind: loss})
    rsu = channel.layout.rsu_position
    rx = np.array([[8.0, 8.75, 1.6]])
    point = rsu + 0.9 * (rx[0] - rsu)  # close to the receiver, low enough to hit the box
    box = Boxes(point[None, :], np.array([[1.0, 1.0, 2 * point[2] + 0.5]]), [["car", "truck", "pedestrian", "parked_car"].index(kind)])
    clear = np.sum(np.abs(channel.channels(rx, Boxes.empty())) ** 2)
    blocked = np.sum(np.abs(channel.channels(rx, box)) ** 2)
    assert 10 * math.log10(clear / blocked) == pytest.approx(loss, abs=1e-6)


def test_a_vehicle_body_never_blocks_its_own_links():
    channel = los_only()
    rx = np.array([[0.0, 5.25, 1.6]])
    own_car = on_ground("car", [0.0], [5.25], size=(4.5, 1.8, 2.0), owner=[7])
    free = channel.channels(rx, Boxes.empty(), rx_ids=[7])
    np.testing.assert_array_equal(channel.channels(rx, own_car, rx_ids=[7]), free)
    assert np.sum(np.abs(channel.channels(rx, own_car, rx_ids=[3])) ** 2) < np.sum(np.abs(free) ** 2)


def test_best_beam_tracks_the_angle_as_a_vehicle_drives_past(codebook):
    channel = GeometricChannel(seed=3)
    x_min, x_max = channel.layout.x_range
    xs = np.linspace(x_min, x_max, 200)
    rx = np.stack([xs, np.full_like(xs, 5.25), np.full_like(xs, 1.6)], axis=1)
    best = np.argmax(rss_vector(channel.channels(rx), codebook), axis=1)
    assert best[0] <= 1 and best[-1] >= 32
    # multipath (ground bounce at almost the same angle) may flip between neighbours,
    # but the best beam follows the LoS direction across the whole codebook
    d = rx - channel.layout.rsu_position
    sin_los = d[:, 0] / np.linalg.norm(d, axis=1)
    los_beam = np.argmin(np.abs(sin_los[:, None] - np.sin(beam_angles(34))[None, :]), axis=1)
    assert np.max(np.abs(best - los_beam)) <= 1
    assert np.all(np.maximum.accumulate(best) - best <= 1)

def test_same_seed_same_arrays_other_seed_other_scatterers():
    layout = RoadLayout()
    drop = random_drop(np.random.default_rng(5), layout, 8)
    first = GeometricChannel(seed=11).channels(drop.positions, drop.obstacles, drop.ids)
    again = GeometricChannel(seed=11).channels(drop.positions, drop.obstacles, drop.ids)
    other = GeometricChannel(seed=12).channels(drop.positions, drop.obstacles, drop.ids)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_vectorised_over_vehicles_equals_one_at_a_time():
    channel = GeometricChannel(seed=2)
    drop = random_drop(np.random.default_rng(9), channel.layout, 6)
    together = channel.channels(drop.positions, drop.obstacles, drop.ids)
    for k in range(6):
        alone = channel.channels(drop.positions[k:k + 1], drop.obstacles, drop.ids[k:k + 1])
        np.testing.assert_allclose(together[k], alone[0], rtol=1e-12, atol=0)


def test_zero_vehicles_gives_an_empty_channel_matrix():
    assert GeometricChannel().channels(np.zeros((0, 3))).shape == (0, 16)


@pytest.mark.parametrize("kwargs,name", [
    ({"num_antennas": 0}, "num_antennas"),
    ({"carrier_hz": -1.0}, "carrier_hz"),
    ({"num_scatterers": -2}, "num_scatterers"),
    ({"blockage_db": {"tree": 3.0}}, "tree"),
    ({"blockage_db": {"car": -3.0}}, "blockage_db.car"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GeometricChannel(**kwargs)


def test_nan_positions_are_rejected():
    with pytest.raises(ValueError, match="rx_positions"):
        GeometricChannel().channels(np.array([[np.nan, 0.0, 1.6]]))


# ---------------------------------------------------------------- instants of one tick
def test_one_instant_along_a_tick_is_the_snapshot_channel():
    channel = GeometricChannel(seed=4)
    drop = random_drop(np.random.default_rng(2), channel.layout, 6, num_pedestrians=2, num_parked_cars=1)
    h = channel.channels(drop.positions, drop.obstacles, drop.ids)
    along = channel.channels_along(drop.positions[None], drop.obstacles, drop.ids)
    assert along.shape == (1,) + h.shape
    np.testing.assert_allclose(along[0], h, rtol=1e-12, atol=1e-15 * np.abs(h).max())


def test_instants_along_a_tick_follow_every_position_with_the_blockage_of_the_tick():
    """Without boxes every instant is the snapshot channel of its positions; with a box that
    blocks at the tick, the blockage holds for the later instants while phases move on."""
    channel = GeometricChannel(seed=1)
    rx = np.array([[3.0, 8.75, 1.6], [-6.0, 1.75, 1.6]])
    track = rx[None] + np.array([0.0, 1e-3, 2e-3, 5e-3])[:, None, None] * np.array([69.4, 0.0, 0.0])
    along = channel.channels_along(track, Boxes.empty(), np.arange(2))
    for instant, positions in zip(along, track):
        np.testing.assert_allclose(instant, channel.channels(positions), rtol=1e-10, atol=1e-18)
    assert np.abs(along[3] - along[0]).max() > 0.1 * np.abs(along[0]).max()  # 35 cm: the phases moved
    # a pedestrian on car 0's LoS at the tick: every instant keeps that path's loss
    rsu = channel.layout.rsu_position
    point = rsu + 0.95 * (rx[0] - rsu)
    box = Boxes(point[None, :], np.array([[0.3, 0.3, 2 * point[2] + 0.5]]), [2])
    blocked = channel.channels_along(track, box, np.arange(2), reference=rx)
    held = channel.paths(rx, box).blockage_db
    assert held[0, channel.paths(rx, box).names.index("los")] == 20.0 and not held[1].any()
    for instant, positions in zip(blocked, track):
        paths = channel.paths(positions, Boxes.empty())
        gain = paths.gain * 10 ** (-held / 20)  # the blockage of the tick, held
        expected = np.einsum("kp,kpn->kn", gain, ula_response(channel.num_antennas, paths.sin_aod))
        np.testing.assert_allclose(instant, expected, rtol=1e-10, atol=1e-18)


def test_only_vectorised_backends_are_sampled_between_ticks():
    assert GeometricChannel.vectorised_tracks is True
    assert ChannelModel.vectorised_tracks is False
