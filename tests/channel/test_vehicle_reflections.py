"""Finite blockage per obstacle class and specular reflections off vehicle faces
(``vehicle_reflections``) in the geometric channel."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from v2xsim.channel.geometric import DEFAULT_BLOCKAGE_DB, DEFAULT_REFLECTION_DB, GeometricChannel
from v2xsim.geometry import KIND_CODE, Boxes, RoadLayout, on_ground, random_drop, vehicle_boxes

WAVELENGTH = 299_792_458.0 / 60e9


def bare(**kwargs) -> GeometricChannel:
    """Direct path only (plus whatever ``kwargs`` add): no ground, walls or scatterers."""
    return GeometricChannel(ground_reflection=False, num_scatterers=0, layout=RoadLayout(buildings=False), **kwargs)


def golden_scene():
    layout = RoadLayout()
    positions = np.array([[-9.0, 1.75, 1.6], [2.5, 5.25, 1.6], [11.0, 8.75, 1.6]])
    ids = np.arange(3)
    obstacles = Boxes.concat(vehicle_boxes(layout, positions, ids), on_ground("truck", [1.0, 12.0], [1.75, 5.25]),
                             on_ground("pedestrian", [-9.5], [1.0]), on_ground("parked_car", [-3.0], [11.5]))
    return layout, positions, obstacles, ids


def test_defaults_reproduce_the_channel_recorded_before_vehicle_reflections():
    """geometric_golden.json: channels of this scene from the code before the options existed."""
    golden = json.loads((Path(__file__).parent / "geometric_golden.json").read_text())
    expected = np.array(golden["real"]) + 1j * np.array(golden["imag"])
    layout, positions, obstacles, ids = golden_scene()
    for channel in (GeometricChannel(layout=layout, seed=5),
                    GeometricChannel(layout=layout, seed=5, vehicle_reflections=False),
                    GeometricChannel(layout=layout, seed=5, vehicle_reflections=True, reflection_db={})):
        np.testing.assert_array_equal(channel.channels(positions, obstacles, ids), expected)
        np.testing.assert_allclose(channel.channels_along(positions[None], obstacles, ids)[0], expected,
                                   rtol=1e-12, atol=1e-15 * np.abs(expected).max())


@pytest.mark.parametrize("kind", sorted(DEFAULT_BLOCKAGE_DB))
def test_a_blocked_direct_path_keeps_its_power_minus_the_class_loss(kind):
    channel = bare()
    rsu = channel.layout.rsu_position
    rx = np.array([[6.0, 8.75, 1.6]])
    point = rsu + 0.97 * (rx[0] - rsu)  # on the direct ray, just before the receiver
    box = Boxes(point[None], np.array([[0.4, 0.4, 2 * point[2]]]), [KIND_CODE[kind]])
    clear = channel.paths(rx, Boxes.empty())
    blocked = channel.paths(rx, box)
    assert blocked.blockage_db[0, 0] == DEFAULT_BLOCKAGE_DB[kind]
    drop_db = 20 * math.log10(abs(clear.gain[0, 0]) / abs(blocked.gain[0, 0]))
    assert drop_db == pytest.approx(DEFAULT_BLOCKAGE_DB[kind], abs=1e-9)
    assert blocked.gain[0, 0] != 0  # finite: a blocked sample is not silent


# a car (4.5 x 1.8 x 1.5 m) in the far lane, its near side at y = 8.1 m turned to the RSU
# at (0, -1, 10); a low antenna at (6, 7.6, 1.0) between them sees the reflection
CAR = on_ground("car", [6.0], [9.0])
RX = np.array([[6.0, 7.6, 1.0]])


def test_a_reflection_off_a_car_side_has_the_image_method_length_and_angle():
    channel = bare(vehicle_reflections=True)
    paths = channel.paths(RX, CAR, np.array([0]))
    assert paths.names == ("los", "face:0y")
    # mirror image of the RSU in the plane y = 8.1: (0, 2 * 8.1 + 1, 10) = (0, 17.2, 10)
    # rx - image = (6, -9.6, -9): length sqrt(36 + 92.16 + 81) = sqrt(209.16)
    length = math.sqrt(209.16)
    assert paths.length[0, 1] == pytest.approx(length, rel=1e-12)
    # the first leg leaves the RSU parallel to the mirrored ray: sin = 6 / length
    assert paths.sin_aod[0, 1] == pytest.approx(6.0 / length, rel=1e-12)
    # specular point: 9.1 / 9.6 of the way from the image: x = 5.6875, z = 10 - 9 * 9.1 / 9.6
    assert 10 - 9 * 9.1 / 9.6 < 1.5  # below the roof: it lies on the face
    loss_db = DEFAULT_REFLECTION_DB["car"] + 15.0 * length / 1000
    power = (WAVELENGTH / (4 * math.pi * length)) ** 2 * 10 ** (-loss_db / 10)
    assert abs(paths.gain[0, 1]) ** 2 == pytest.approx(power, rel=1e-9)
    assert paths.blockage_db[0, 1] == 0.0


def test_the_reflected_path_is_added_to_the_channel():
    off = bare().channels(RX, CAR, np.array([0]))
    on = bare(vehicle_reflections=True)
    paths = on.paths(RX, CAR, np.array([0]))
    from v2xsim.channel.codebook import ula_response
    expected = np.einsum("kp,kpn->kn", paths.gain, ula_response(on.num_antennas, paths.sin_aod))
    np.testing.assert_allclose(on.channels(RX, CAR, np.array([0])), expected, rtol=1e-12, atol=0)
    assert not np.allclose(on.channels(RX, CAR, np.array([0])), off)


@pytest.mark.parametrize("rx,why", [
    ([6.0, 10.5, 1.0], "behind the car: its RSU-facing side is turned away from the receiver"),
    ([6.0, 7.6, 1.6], "roof antenna above the body: the specular point is above the car"),
    ([-20.0, 7.6, 1.0], "specular point beyond the end of the car"),
])
def test_only_faces_turned_to_both_ends_and_hit_by_the_specular_point_reflect(rx, why):
    paths = bare(vehicle_reflections=True).paths(np.array([rx]), CAR, np.array([0]))
    faces = [i for i, name in enumerate(paths.names) if name.startswith("face:")]
    assert all(not np.isfinite(paths.blockage_db[0, i]) and paths.gain[0, i] == 0 for i in faces), why


def test_a_vehicle_never_reflects_its_own_links_and_pedestrians_do_not_reflect_by_default():
    channel = bare(vehicle_reflections=True)
    own = on_ground("car", [6.0], [9.0], owner=[0])
    assert channel.paths(RX, own, np.array([0])).names == ("los",)
    assert channel.paths(RX, own, np.array([1])).names == ("los", "face:0y")
    person = on_ground("pedestrian", [5.7], [8.3], size=(0.5, 0.5, 3.0))
    assert channel.paths(RX, person, np.array([0])).names == ("los",)
    listed = bare(vehicle_reflections=True, reflection_db={"pedestrian": 10.0})
    assert listed.paths(RX, person, np.array([0])).names == ("los", "face:0y")


def test_a_reflected_leg_through_another_box_loses_that_box_class_loss():
    channel = bare(vehicle_reflections=True)
    free = channel.paths(RX, CAR, np.array([1]))
    point = np.array([5.6875, 8.1, 10 - 9 * 9.1 / 9.6])  # the specular point
    middle = 0.5 * (point + RX[0])  # on the second leg
    person = Boxes(middle[None], np.array([[0.1, 0.1, 2 * middle[2]]]), [KIND_CODE["pedestrian"]])
    both = Boxes.concat(CAR, person)
    blocked = channel.paths(RX, both, np.array([1]))
    face = blocked.names.index("face:0y")
    assert blocked.blockage_db[0, face] == DEFAULT_BLOCKAGE_DB["pedestrian"]
    ratio_db = 20 * math.log10(abs(free.gain[0, 1]) / abs(blocked.gain[0, face]))
    assert ratio_db == pytest.approx(DEFAULT_BLOCKAGE_DB["pedestrian"], abs=1e-9)


def test_trucks_reflect_to_cars_between_them_and_the_rsu():
    channel = bare(vehicle_reflections=True)
    truck = on_ground("truck", [10.0], [8.75])  # near side y = 7.5, 4 m high
    paths = channel.paths(np.array([[8.0, 5.25, 1.6]]), truck, np.array([0]))
    face = paths.names.index("face:0y")
    image = np.array([0.0, 16.0, 10.0])
    assert paths.length[0, face] == pytest.approx(np.linalg.norm([8.0, 5.25, 1.6] - image), rel=1e-12)


def test_reflections_are_deterministic_and_held_over_the_instants_of_a_tick():
    layout = RoadLayout()
    drop = random_drop(np.random.default_rng(4), layout, 8, num_pedestrians=2, num_parked_cars=2)
    obstacles = Boxes.concat(drop.obstacles, on_ground("truck", [-6.0, 9.0], [8.75, 1.75]))
    a = GeometricChannel(layout=layout, seed=3, vehicle_reflections=True)
    b = GeometricChannel(layout=layout, seed=3, vehicle_reflections=True)
    h = a.channels(drop.positions, obstacles, drop.ids)
    np.testing.assert_array_equal(h, b.channels(drop.positions, obstacles, drop.ids))
    assert any(name.startswith("face:") for name in a.paths(drop.positions, obstacles, drop.ids).names)
    along = a.channels_along(drop.positions[None], obstacles, drop.ids)
    np.testing.assert_allclose(along[0], h, rtol=1e-12, atol=1e-15 * np.abs(h).max())
    track = drop.positions[None] + np.array([0.0, 1e-3, 2e-3])[:, None, None] * np.array([33.0, 0.0, 0.0])
    first = a.channels_along(track, obstacles, drop.ids, reference=drop.positions)
    again = a.channels_along(track, obstacles, drop.ids, reference=drop.positions)  # memo hit
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, b.channels_along(track, obstacles, drop.ids, reference=drop.positions))


@pytest.mark.parametrize("kwargs,fragments", [
    ({"reflection_db": {"bus": 3.0}}, ["reflection_db", "'bus'", "valid:"]),
    ({"reflection_db": {"truck": -1.0}}, ["reflection_db.truck", ">= 0"]),
    ({"reflection_db": {"car": float("nan")}}, ["reflection_db.car", "finite"]),
    ({"reflection_db": {"car": float("inf")}}, ["reflection_db.car", "finite"]),
    ({"reflection_db": 6.0}, ["reflection_db", "table"]),
    ({"vehicle_reflections": "yes"}, ["vehicle_reflections", "true or false"]),
    ({"blockage_db": {"truck": float("inf")}}, ["blockage_db.truck", "finite"]),
    ({"blockage_db": {"bus": 3.0}}, ["blockage_db", "'bus'"]),
])
def test_bad_options_name_the_option(kwargs, fragments):
    with pytest.raises(ValueError) as caught:
        GeometricChannel(**kwargs)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_bad_options_in_a_scenario_are_config_errors_naming_the_option():
    from v2xsim import build
    from v2xsim.config import RadioConfig
    from v2xsim.errors import ConfigError

    with pytest.raises(ConfigError, match="channel backend 'geometric'.*reflection_db.truck"):
        build.channel_backend("geometric", {"reflection_db": {"truck": -3.0}}, layout=RoadLayout(),
                              radio=RadioConfig(), seed=0)
