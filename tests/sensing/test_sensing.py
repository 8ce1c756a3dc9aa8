"""GPS, LiDAR grid and camera computed from small hand-made snapshots."""

import numpy as np
import pytest

from v2xsim.sensing import (
    SensorConfig,
    camera_image,
    camera_images,
    first_hits,
    gps_reading,
    grid_bounds,
    lidar_grid,
    lidar_grids,
    sense,
)
from v2xsim.sensing.camera import FACE_SHADE, KIND_COLOURS, RSU_COLOUR, shaded
from v2xsim.sensing.rays import scan_pattern
from v2xsim.geometry import Boxes, RoadLayout, Snapshot, on_ground, random_drop, segment_hits, vehicle_boxes

LAYOUT = RoadLayout()
EGO = np.array([0.0, 8.75, 1.6])  # far lane, right in front of the RSU
EGO_ID = 7


def ego_box(owner: int = EGO_ID) -> Boxes:
    return vehicle_boxes(LAYOUT, EGO[None, :], np.array([owner]))


def blocker(kind: str = "car", x: float = 0.0, lane: int = 0) -> Boxes:
    return on_ground(kind, [x], [LAYOUT.lane_centres[lane]])


def cell_of(point: np.ndarray, grid: int = 20) -> tuple[int, ...]:
    lower, upper = grid_bounds(LAYOUT, EGO)
    return tuple(np.floor((point - lower) / (upper - lower) * grid).astype(int))


def palette(colour) -> set[tuple[int, int, int]]:
    return {tuple(int(c) for c in shaded(colour, face)) for face in range(len(FACE_SHADE))}


def count_colours(image: np.ndarray, colours: set) -> int:
    pixels = image.reshape(-1, 3)
    return int(sum(np.all(pixels == np.array(c, dtype=np.uint8), axis=1).sum() for c in colours))


# ---------------------------------------------------------------- ray casting


def test_first_hits_agrees_with_the_segment_test(rng):
    centre = rng.uniform(-10, 10, (12, 3))
    boxes = Boxes(centre, rng.uniform(0.5, 4.0, (12, 3)), np.zeros(12, dtype=int))
    origin = np.array([0.3, -0.2, 0.1])
    directions = rng.normal(size=(500, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    inside = np.all((boxes.lower <= origin) & (origin <= boxes.upper), axis=1)
    boxes = Boxes(boxes.centre[~inside], boxes.size[~inside], boxes.kind[~inside])
    t, box, face = first_hits(origin, directions, boxes.lower, boxes.upper)
    reach = segment_hits(origin, origin + 50.0 * directions, boxes).any(axis=1)
    assert np.array_equal(np.isfinite(t), reach)
    hit = np.flatnonzero(np.isfinite(t))
    assert len(hit) > 20
    points = origin + directions[hit] * t[hit, None]
    axis, upper_face = face[hit] // 2, face[hit] % 2 == 1
    plane = np.where(upper_face, boxes.upper[box[hit], axis], boxes.lower[box[hit], axis])
    assert np.allclose(points[np.arange(len(hit)), axis], plane, atol=1e-3)
    # nothing closer: the segment up to just before the hit crosses no box
    before = origin + directions[hit] * (t[hit, None] - 1e-3)
    assert not segment_hits(np.broadcast_to(origin, before.shape), before, boxes).any()


def random_boxes(rng, count: int = 25) -> Boxes:
    centre = rng.uniform([-25, -15, 0], [25, 15, 6], (count, 3))
    return Boxes(centre, rng.uniform(0.3, 6.0, (count, 3)), np.zeros(count, dtype=int))


def test_lidar_scan_culling_matches_brute_force(rng):
    from v2xsim.sensing.lidar import _scan_hits

    boxes = random_boxes(rng)
    origin = np.array([0.5, 0.2, 1.8])
    directions, inv = scan_pattern(360, 16, -15.0, 15.0)
    fast = _scan_hits(origin, boxes.lower, boxes.upper, inv, t_max=100.0)
    t, _, _ = first_hits(origin, directions, boxes.lower, boxes.upper, t_max=100.0)
    assert np.isfinite(t).sum() > 500
    assert np.array_equal(np.isfinite(fast), np.isfinite(t))
    assert np.allclose(fast[np.isfinite(t)], t[np.isfinite(t)], atol=1e-3)


def test_scan_pattern_is_azimuth_major_with_reciprocals():
    directions, inv = scan_pattern(8, 3, -10.0, 10.0)
    assert directions.shape == (24, 3) and inv.shape == (3, 8, 3)
    assert not directions.flags.writeable and not inv.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    # the first azimuth's three channels come first, lowest elevation first
    np.testing.assert_allclose(np.degrees(np.arcsin(directions[:3, 2])), [-10.0, 0.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(np.arctan2(directions[::3, 1], directions[::3, 0]) % (2 * np.pi),
                               (np.arange(8) + 0.5) * np.pi / 4)
    usable = np.abs(directions) > 1e-6
    product = inv.reshape(3, -1).T * directions
    np.testing.assert_allclose(product[usable], 1.0, rtol=1e-6)


def test_camera_box_culling_matches_brute_force(rng):
    from v2xsim.sensing.camera import _box_layer, _view

    boxes = random_boxes(rng)
    origin = np.array([0.5, 12.0, 1.8])
    view = _view(64, 36, 110.0, -90.0, 10.0)
    t, box, face = _box_layer(origin, boxes.lower, boxes.upper, view)
    ref_t, ref_box, ref_face = first_hits(origin, view.rays, boxes.lower, boxes.upper)
    assert np.isfinite(ref_t).sum() > 100
    assert np.array_equal(np.isfinite(t.reshape(-1)), np.isfinite(ref_t))
    assert np.array_equal(box.reshape(-1), ref_box) and np.array_equal(face.reshape(-1), ref_face)


# ---------------------------------------------------------------- LiDAR


def test_lidar_marks_a_car_between_vehicle_and_rsu(rng):
    car = blocker("car", x=0.0, lane=0)
    grid = lidar_grid(LAYOUT, Boxes.concat(ego_box(), car), EGO, EGO_ID, rng)
    assert grid.shape == (20, 20, 20) and grid.dtype == np.int8
    occupied = np.argwhere(grid == 1)
    assert len(occupied) >= 5
    lower, upper = grid_bounds(LAYOUT, EGO)
    cell = (upper - lower) / 20
    centres = lower + (occupied + 0.5) * cell
    assert np.all(centres >= car.lower - cell) and np.all(centres <= car.upper + cell)


def test_lidar_marks_exactly_one_ego_and_one_rsu_cell(rng):
    grid = lidar_grid(LAYOUT, Boxes.concat(ego_box(), blocker()), EGO, EGO_ID, rng)
    assert [tuple(c) for c in np.argwhere(grid == -2)] == [cell_of(EGO)]
    assert [tuple(c) for c in np.argwhere(grid == -1)] == [cell_of(LAYOUT.rsu_position)]


def test_own_body_returns_no_points(rng):
    own = lidar_grid(LAYOUT, ego_box(), EGO, EGO_ID, rng)
    assert not np.any(own == 1)
    # the same box owned by someone else sits right under the sensor and is seen
    foreign = lidar_grid(LAYOUT, ego_box(owner=-1), EGO, EGO_ID, rng)
    assert np.any(foreign == 1)


def test_full_dropout_removes_every_obstacle_cell(rng):
    scene = Boxes.concat(ego_box(), blocker(), blocker("pedestrian", x=2.0, lane=1))
    grid = lidar_grid(LAYOUT, scene, EGO, EGO_ID, rng, dropout=1.0)
    assert not np.any(grid == 1)
    assert np.sum(grid == -1) == 1 and np.sum(grid == -2) == 1


def test_lidar_is_reproducible_with_the_same_seed():
    scene = Boxes.concat(ego_box(), blocker(), blocker("truck", x=-8.0, lane=1))
    a = lidar_grid(LAYOUT, scene, EGO, EGO_ID, np.random.default_rng(5), dropout=0.3)
    b = lidar_grid(LAYOUT, scene, EGO, EGO_ID, np.random.default_rng(5), dropout=0.3)
    assert np.array_equal(a, b)


def test_batched_lidar_matches_one_by_one():
    drop = random_drop(np.random.default_rng(3), LAYOUT, 3)
    batch = lidar_grids(LAYOUT, drop.obstacles, drop.positions, drop.ids, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    single = [lidar_grid(LAYOUT, drop.obstacles, p, i, rng) for p, i in zip(drop.positions, drop.ids)]
    assert batch.shape == (3, 20, 20, 20) and batch.dtype == np.int8
    assert np.array_equal(batch, np.stack(single))


# ---------------------------------------------------------------- camera


def test_camera_image_format_and_content():
    scene = Boxes.concat(ego_box(), blocker("pedestrian", x=-2.0, lane=0), blocker("car", x=6.0, lane=1))
    image = camera_image(LAYOUT, scene, EGO, EGO_ID)
    assert image.shape == (90, 160, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= 5
    assert count_colours(image, palette(RSU_COLOUR)) > 0
    assert count_colours(image, palette(KIND_COLOURS["pedestrian"])) > 0
    assert np.array_equal(image, camera_image(LAYOUT, scene, EGO, EGO_ID))


def test_truck_moved_into_view_changes_the_image():
    trucks = palette(KIND_COLOURS["truck"])
    away = camera_image(LAYOUT, Boxes.concat(ego_box(), blocker("truck", x=400.0, lane=1)), EGO, EGO_ID)
    near = camera_image(LAYOUT, Boxes.concat(ego_box(), blocker("truck", x=0.0, lane=1)), EGO, EGO_ID)
    assert count_colours(away, trucks) == 0
    assert count_colours(near, trucks) > 1000
    assert not np.array_equal(away, near)


def test_truck_between_camera_and_rsu_hides_the_rsu():
    rsu = palette(RSU_COLOUR)
    clear = camera_image(LAYOUT, ego_box(), EGO, EGO_ID)
    blocked = camera_image(LAYOUT, Boxes.concat(ego_box(), blocker("truck", x=0.0, lane=0)), EGO, EGO_ID)
    assert count_colours(clear, rsu) > 20
    assert count_colours(blocked, rsu) < 0.8 * count_colours(clear, rsu)


def test_camera_does_not_draw_its_own_car():
    empty = camera_image(LAYOUT, Boxes.empty(), EGO, EGO_ID)
    assert np.array_equal(camera_image(LAYOUT, ego_box(), EGO, EGO_ID), empty)
    assert not np.array_equal(camera_image(LAYOUT, ego_box(owner=-1), EGO, EGO_ID), empty)


def test_batched_camera_shape():
    drop = random_drop(np.random.default_rng(4), LAYOUT, 2)
    images = camera_images(LAYOUT, drop.obstacles, drop.positions, drop.ids, width=32, height=18)
    assert images.shape == (2, 18, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[1], camera_image(LAYOUT, drop.obstacles, drop.positions[1],
                                                  int(drop.ids[1]), width=32, height=18))


# ---------------------------------------------------------------- GPS


def test_gps_without_noise_is_the_position(rng):
    positions = np.array([[1.5, 8.75, 1.6], [-12.25, 1.75, 1.6]])
    fix = gps_reading(positions, rng, noise_std_m=0.0)
    assert fix.shape == (2, 2) and fix.dtype == np.float32
    assert np.array_equal(fix, positions[:, :2].astype(np.float32))


def test_gps_noise_statistics(rng):
    positions = np.tile([[3.0, 5.25, 1.6]], (20_000, 1))
    error = gps_reading(positions, rng, noise_std_m=2.0) - positions[:, :2]
    assert np.all(np.abs(error.mean(axis=0)) < 0.06)
    assert np.allclose(error.std(axis=0), 2.0, rtol=0.03)


# ---------------------------------------------------------------- sense + validation


def test_sense_returns_flash_shapes(rng):
    drop = random_drop(np.random.default_rng(2), LAYOUT, 3)
    out = sense(LAYOUT, drop, rng, config=SensorConfig(gps_noise_m=0.0))
    assert out["gps"].shape == (3, 2) and out["gps"].dtype == np.float32
    assert out["image"].shape == (3, 90, 160, 3) and out["image"].dtype == np.uint8
    assert out["lidar"].shape == (3, 20, 20, 20) and out["lidar"].dtype == np.int8
    assert np.array_equal(out["gps"], drop.positions[:, :2].astype(np.float32))
    same = sense(LAYOUT, Snapshot(ids=drop.ids, positions=drop.positions, obstacles=drop.obstacles),
                 np.random.default_rng(1234), config=SensorConfig(gps_noise_m=0.0))
    assert all(np.array_equal(out[key], same[key]) for key in out)


@pytest.mark.parametrize("field,value", [
    ("gps_noise_m", -1.0), ("lidar_grid", 0), ("lidar_dropout", 1.5), ("lidar_margin_m", -2.0),
    ("lidar_num_azimuth", 0), ("camera_width", 0), ("camera_fov_deg", 180.0),
    ("camera_pitch_deg", 95.0), ("mount_height_m", float("nan")),
])
def test_sensor_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SensorConfig(**{field: value})


@pytest.mark.parametrize("call,name", [
    (lambda r: gps_reading(np.zeros((2, 3)), r, noise_std_m=-0.1), "noise_std_m"),
    (lambda r: gps_reading(np.zeros((2, 4)), r), "positions"),
    (lambda r: lidar_grid(LAYOUT, Boxes.empty(), EGO, 0, r, grid=0), "grid"),
    (lambda r: lidar_grid(LAYOUT, Boxes.empty(), EGO, 0, r, dropout=-0.2), "dropout"),
    (lambda r: lidar_grid(LAYOUT, Boxes.empty(), EGO[:2], 0, r), "rx_position"),
    (lambda r: lidar_grid(LAYOUT, Boxes.empty(), EGO, 0, r, margin_m=-1.0), "margin_m"),
    (lambda r: lidar_grids(LAYOUT, Boxes.empty(), np.zeros((2, 3)), [0], r), "rx_ids"),
    (lambda r: camera_image(LAYOUT, Boxes.empty(), EGO, 0, fov_deg=0.0), "fov_deg"),
    (lambda r: camera_image(LAYOUT, Boxes.empty(), EGO, 0, width=0), "width"),
    (lambda r: camera_images(LAYOUT, Boxes.empty(), np.zeros(3), [0]), "rx_positions"),
    (lambda r: sense(LAYOUT, (np.zeros((1, 3)), [0]), r), "snapshot"),
])
def test_bad_arguments_name_the_parameter(rng, call, name):
    with pytest.raises(ValueError, match=name):
        call(rng)
