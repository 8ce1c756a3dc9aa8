"""On-vehicle sensors computed from a world snapshot, in the FLASH data set's formats.

- GPS: ``(K, 2)`` float32 road-frame position [m] plus Gaussian error (:mod:`.gps`).
- LiDAR: ``(K, 20, 20, 20)`` int8 occupancy grid between the RSU and the vehicle,
  0 empty / 1 obstacle / -1 RSU / -2 receiver (:mod:`.lidar`).
- Camera: ``(K, 90, 160, 3)`` uint8 ray-cast roof view towards the RSU (:mod:`.camera`).

The ray helpers both use (box slab test, LiDAR scan pattern) are in :mod:`.rays`.

Orientation (vehicles with a heading, e.g. at an intersection): the camera is mounted on
the body and turns with it (``camera_yaw_deg`` is relative to the heading). GPS reports a
position only. The LiDAR spins through 360 deg and its grid is, as in FLASH, the box
between the RSU and the vehicle in the site frame, so a heading could only change the
azimuth at which the spin starts: the scan pattern starts at +x for every vehicle (an
approximation of at most half an azimuth step, 0.25 deg by default). Obstacles are
axis-aligned boxes, a turned body's box its bounding box
(:func:`v2xsim.geometry.footprint`).

:func:`sense` produces all three for every vehicle of a :class:`~v2xsim.geometry.Snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.formats import IMAGE_SHAPE, LIDAR_SHAPE
from v2xsim.geometry import Boxes, RoadLayout, Snapshot
from v2xsim.sensing.camera import camera_image, camera_images
from v2xsim.sensing.gps import DEFAULT_GPS_NOISE_M, gps_reading
from v2xsim.sensing.lidar import grid_bounds, lidar_grid, lidar_grids
from v2xsim.sensing.rays import first_hits

__all__ = [
    "SensorConfig",
    "camera_image",
    "camera_images",
    "first_hits",
    "gps_reading",
    "grid_bounds",
    "lidar_grid",
    "lidar_grids",
    "sense",
]


@dataclass(frozen=True, kw_only=True)
class SensorConfig:
    """Sensor options shared by all vehicles.

    Attributes:
        gps_noise_m: per-axis GPS error standard deviation [m].
        lidar_grid: LiDAR grid cells per axis.
        lidar_dropout: probability of losing each LiDAR point, in [0, 1].
        lidar_margin_m: grid margin around RSU and vehicle in x and y [m].
        lidar_range_noise_m: LiDAR range error standard deviation [m].
        lidar_num_azimuth: LiDAR rays per revolution.
        camera_width, camera_height: image size [px].
        camera_fov_deg: horizontal field of view [deg], in (0, 180).
        camera_yaw_deg: viewing direction in the x-y plane [deg] relative to the
            vehicle's heading (for a vehicle driving along +x: from +x); -90 looks to the
            right of the vehicle, the RSU side of the straight road.
        camera_pitch_deg: upward camera tilt [deg], in (-90, 90).
        mount_height_m: LiDAR and camera height above the antenna [m].
    """

    gps_noise_m: float = DEFAULT_GPS_NOISE_M
    lidar_grid: int = LIDAR_SHAPE[0]
    lidar_dropout: float = 0.0
    lidar_margin_m: float = 3.0
    lidar_range_noise_m: float = 0.02
    lidar_num_azimuth: int = 720
    camera_width: int = IMAGE_SHAPE[1]
    camera_height: int = IMAGE_SHAPE[0]
    camera_fov_deg: float = 110.0
    camera_yaw_deg: float = -90.0
    camera_pitch_deg: float = 10.0
    mount_height_m: float = 0.2

    def __post_init__(self) -> None:
        check.non_negative("gps_noise_m", self.gps_noise_m)
        check.positive_int("lidar_grid", self.lidar_grid)
        dropout = check.finite("lidar_dropout", self.lidar_dropout)
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"lidar_dropout must be in [0, 1], got {dropout}")
        check.non_negative("lidar_margin_m", self.lidar_margin_m)
        check.non_negative("lidar_range_noise_m", self.lidar_range_noise_m)
        check.positive_int("lidar_num_azimuth", self.lidar_num_azimuth)
        check.positive_int("camera_width", self.camera_width)
        check.positive_int("camera_height", self.camera_height)
        fov = check.finite("camera_fov_deg", self.camera_fov_deg)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"camera_fov_deg must be in (0, 180), got {fov}")
        check.finite("camera_yaw_deg", self.camera_yaw_deg)
        pitch = check.finite("camera_pitch_deg", self.camera_pitch_deg)
        if not -90.0 < pitch < 90.0:
            raise ValueError(f"camera_pitch_deg must be in (-90, 90), got {pitch}")
        check.non_negative("mount_height_m", self.mount_height_m)


def sense(
    layout: RoadLayout,
    snapshot: Snapshot,
    rng: np.random.Generator,
    *,
    config: SensorConfig | None = None,
) -> dict[str, np.ndarray]:
    """GPS, camera and LiDAR of every vehicle of a snapshot.

    Args:
        layout: road geometry.
        snapshot: the vehicles (``ids``, ``positions`` (K, 3) [m], ``headings`` (K,) [rad]
            if known: the camera turns with the body) and every obstacle box.
        rng: source of GPS error, LiDAR range error and dropout (in that order).
        config: sensor options (defaults: :class:`SensorConfig`).

    Returns:
        ``{"gps": (K, 2) float32 [m], "image": (K, H, W, 3) uint8,
        "lidar": (K, G, G, G) int8}``.
    """
    if config is None:
        config = SensorConfig()
    if not isinstance(config, SensorConfig):
        raise ValueError(f"config must be a SensorConfig, got {type(config).__name__}")
    if not isinstance(layout, RoadLayout):
        raise ValueError(f"layout must be a RoadLayout, got {type(layout).__name__}")
    if not isinstance(snapshot, Snapshot):
        raise ValueError(f"snapshot must be a Snapshot, got {type(snapshot).__name__}")
    positions, ids, obstacles = snapshot.positions, snapshot.ids, snapshot.obstacles
    if not isinstance(obstacles, Boxes):
        raise ValueError(f"snapshot obstacles must be Boxes, got {type(obstacles).__name__}")
    positions = np.asarray(positions, dtype=float).reshape(-1, 3) if np.size(positions) == 0 else positions
    return {
        "gps": gps_reading(positions, rng, noise_std_m=config.gps_noise_m),
        "image": camera_images(
            layout, obstacles, positions, ids, headings=snapshot.headings,
            width=config.camera_width, height=config.camera_height,
            fov_deg=config.camera_fov_deg, yaw_deg=config.camera_yaw_deg,
            pitch_deg=config.camera_pitch_deg, mount_height_m=config.mount_height_m),
        "lidar": lidar_grids(
            layout, obstacles, positions, ids, rng,
            grid=config.lidar_grid, dropout=config.lidar_dropout,
            margin_m=config.lidar_margin_m, range_noise_m=config.lidar_range_noise_m,
            num_azimuth=config.lidar_num_azimuth, mount_height_m=config.mount_height_m),
    }
