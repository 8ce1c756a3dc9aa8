"""Sensors of the Sionna RT backend: camera and LiDAR from the ray-traced 3-D scene, in the
formats of :func:`v2xsim.sensing.sense`. Tests that ray cast need sionna-rt; they are
skipped, with the reason, only when it cannot be imported."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from v2xsim.channel.geometric import GeometricChannel
from v2xsim.channel.sionna_rt import SceneSensors, SionnaRTChannel, camera_rays
from v2xsim.sensing import SensorConfig, sense
from v2xsim.sensing.camera import KIND_COLOURS, _view
from v2xsim.sensing.lidar import grid_bounds
from v2xsim.sim.rsu import SchemeRunner
from v2xsim.geometry import Boxes, RoadLayout, Snapshot, on_ground, random_drop, vehicle_boxes
from sionna_available import needs_sionna

pytestmark = pytest.mark.slow  # ray-cast sensors in Sionna scenes


STREET = RoadLayout()
OPEN = RoadLayout(buildings=False)
#: ego car in the far lane, looking across the road (-y) at the RSU side
EGO = np.array([[2.0, STREET.lane_centres[2], STREET.antenna_height_m]])
EGO_ID = np.array([7])


@pytest.fixture(scope="module")
def street() -> SionnaRTChannel:
    return SionnaRTChannel(layout=STREET, num_antennas=16, carrier_hz=60e9, seed=0, scene="street_canyon",
                           cache=False)


@pytest.fixture(scope="module")
def empty() -> SionnaRTChannel:
    return SionnaRTChannel(layout=OPEN, scene="empty", cache=False)


def own_body() -> Boxes:
    return vehicle_boxes(STREET, EGO, EGO_ID)


def ego_view(obstacles: Boxes) -> Snapshot:
    """The ego car alone among ``obstacles``."""
    return Snapshot(ids=EGO_ID, positions=EGO, obstacles=obstacles)


def truck_in_view(x: float) -> Boxes:
    """A truck in the middle lane at ``x``, between the ego car and the RSU when x ~ 2."""
    return on_ground("truck", [x], [STREET.lane_centres[1]])


def rsu_cells(layout: RoadLayout, ego: np.ndarray, grid: int = 20) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = grid_bounds(layout, ego)
    return lower, (upper - lower) / grid


# ----------------------------------------------------------------- no ray casting
def test_pixel_rays_are_the_geometric_cameras_at_one_sample():
    np.testing.assert_allclose(camera_rays(160, 90, 110.0, -90.0, 10.0, 1)[0],
                               _view(160, 90, 110.0, -90.0, 10.0).rays, atol=1e-12)
    rays = camera_rays(160, 90, 110.0, -90.0, 10.0, 4)
    assert rays.shape == (4, 90 * 160, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0)
    assert len({tuple(r) for r in rays[:, 0].round(9)}) == 4  # distinct sub-pixel samples


class _FakeSceneSensor:
    """Records its calls; answers with GPS only, so its readings are recognisable."""

    def __init__(self) -> None:
        self.calls = []

    def sense(self, layout, snapshot, rng, *, config=None):
        self.calls.append((layout, snapshot, rng, config))
        return {"gps": np.zeros((len(snapshot.ids), 2), np.float32)}


class _FakeChannel:
    def __init__(self, sensor) -> None:
        self.sensor = sensor

    def scene_sensor(self):
        return self.sensor


def test_scheme_runner_senses_through_the_channel_backend_when_it_can():
    snap = ego_view(own_body())
    config = SensorConfig(camera_width=32, camera_height=18, lidar_grid=10)
    runner = SchemeRunner.__new__(SchemeRunner)  # only _sense is exercised
    runner.scheme, runner.rng = SimpleNamespace(sensor_config=config), np.random.default_rng(0)
    scene = _FakeSceneSensor()
    runner.world = SimpleNamespace(layout=STREET, channel=_FakeChannel(scene))
    readings = runner._sense(snap)
    assert len(scene.calls) == 1 and set(readings) == {"gps"}
    layout, seen, rng, used = scene.calls[0]
    assert layout is STREET and seen is snap and rng is runner.rng and used is config
    # no scene sensor (the ChannelModel default, here a real geometric backend): geometric sensors
    for channel in (_FakeChannel(None), GeometricChannel(layout=STREET)):
        runner.world = SimpleNamespace(layout=STREET, channel=channel)
        runner.rng = np.random.default_rng(0)
        readings = runner._sense(snap)
        expected = sense(STREET, snap, np.random.default_rng(0), config=config)
        assert set(readings) == set(expected) == {"gps", "image", "lidar"}
        for key in expected:
            np.testing.assert_array_equal(readings[key], expected[key])


def test_the_sionna_backend_offers_its_scene_sensors_and_checks_the_road_first():
    channel = SionnaRTChannel(layout=STREET, scene="empty", cache=False)
    sensor = channel.scene_sensor()
    assert isinstance(sensor, SceneSensors) and sensor is channel.scene_sensor()
    with pytest.raises(ValueError, match="layout"):
        sensor.sense(OPEN, ego_view(own_body()), np.random.default_rng(0))
    assert channel.rt_scene.sionna is None  # checked before any scene is loaded


# ----------------------------------------------------------------- ray casting
@needs_sionna
def test_formats_equal_those_of_the_geometric_sensors(street):
    drop = random_drop(np.random.default_rng(2), STREET, 5)
    ours = street.scene_sensor().sense(STREET, drop, np.random.default_rng(1))
    theirs = sense(STREET, drop, np.random.default_rng(1))
    assert set(ours) == set(theirs) == {"gps", "image", "lidar"}
    for key in theirs:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
    np.testing.assert_array_equal(ours["gps"], theirs["gps"])  # GPS draws first, from the same rng
    assert set(np.unique(ours["lidar"])) <= {-2, -1, 0, 1}
    nobody = Snapshot(ids=np.zeros(0, int), positions=np.zeros((0, 3)), obstacles=drop.obstacles)
    none = street.scene_sensor().sense(STREET, nobody, np.random.default_rng(1))
    assert none["image"].shape == (0, 90, 160, 3) and none["lidar"].shape == (0, 20, 20, 20)


@needs_sionna
def test_image_is_not_blank_and_changes_when_a_truck_moves_into_view(street):
    rng = np.random.default_rng(0)
    sensor = street.scene_sensor()
    away = sensor.sense(STREET, ego_view(Boxes.concat(own_body(), truck_in_view(-60.0))), rng)["image"][0]
    near = sensor.sense(STREET, ego_view(Boxes.concat(own_body(), truck_in_view(2.0))), rng)["image"][0]
    # the street: facades, sky, sidewalk, road, markings, RSU ...
    assert len(np.unique(away.reshape(-1, 3), axis=0)) >= 6
    assert away.astype(float).std() > 15.0
    changed = np.any(away != near, axis=-1).mean()
    assert changed > 0.2, changed
    # the truck's side (base colour shaded) fills the centre of the view
    red = (near[..., 0] > 100) & (near[..., 1] < 60) & (near[..., 2] < 60)
    assert red[30:60, 60:100].mean() > 0.9
    assert not ((away[..., 0] > 100) & (away[..., 1] < 60) & (away[..., 2] < 60)).any()
    assert KIND_COLOURS["truck"][0] > 100  # the colour the check above relies on


@needs_sionna
def test_lidar_marks_the_car_and_has_one_ego_and_one_rsu_cell(street):
    neighbour = on_ground("car", [2.0], [STREET.lane_centres[1]], owner=[3])  # next lane, beside the ego
    view = ego_view(Boxes.concat(own_body(), neighbour))
    grid = street.scene_sensor().sense(STREET, view, np.random.default_rng(0))["lidar"][0]
    assert (grid == -2).sum() == 1 and (grid == -1).sum() == 1
    marked = np.argwhere(grid == 1)
    assert len(marked) > 5
    lower, step = rsu_cells(STREET, EGO[0])
    centres = lower + (marked + 0.5) * step
    box_lower, box_upper = neighbour.lower[0], neighbour.upper[0]
    # every point lies on the car (within a cell of its box): buildings, posts and ground are background
    assert np.all((centres >= box_lower - step) & (centres <= box_upper + step))


@needs_sionna
def test_own_body_gives_no_lidar_points_and_is_not_in_the_picture(street):
    rng = np.random.default_rng(0)
    sensor = street.scene_sensor()
    alone = sensor.sense(STREET, ego_view(own_body()), rng)
    assert (alone["lidar"][0] == 1).sum() == 0
    nothing = sensor.sense(STREET, ego_view(Boxes.empty()), rng)
    np.testing.assert_array_equal(alone["image"], nothing["image"])
    # the same box owned by someone else is right under the sensor: plenty of points
    body = own_body()
    foreign = Boxes(body.centre, body.size, body.kind, owner=[99])
    assert (sensor.sense(STREET, ego_view(foreign), rng)["lidar"][0] == 1).sum() > 5


@needs_sionna
def test_same_rng_seed_gives_the_same_lidar_grid(street):
    drop = random_drop(np.random.default_rng(4), STREET, 4)
    config = SensorConfig(lidar_dropout=0.3, lidar_range_noise_m=0.1)
    sensor = street.scene_sensor()
    first = sensor.sense(STREET, drop, np.random.default_rng(9), config=config)
    second = sensor.sense(STREET, drop, np.random.default_rng(9), config=config)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    other = sensor.sense(STREET, drop, np.random.default_rng(10), config=config)
    assert np.any(other["lidar"] != first["lidar"])


@needs_sionna
def test_without_buildings_the_scene_sensors_match_the_geometric_ones(empty):
    drop = random_drop(np.random.default_rng(6), OPEN, 4, num_trucks=1, num_pedestrians=2)
    ours = empty.scene_sensor().sense(OPEN, drop, np.random.default_rng(3))
    theirs = sense(OPEN, drop, np.random.default_rng(3))
    # same scan, same rng draws, same boxes: the grids agree up to float rounding at cell edges
    assert np.mean(ours["lidar"] != theirs["lidar"]) < 1e-3
    # same pose, palette and shading; only the horizon differs (the scene's ground ends)
    same = np.all(ours["image"] == theirs["image"], axis=-1).mean()
    assert same > 0.9, same
