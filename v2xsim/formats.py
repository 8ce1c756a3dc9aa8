"""The FLASH sample formats every part of v2xsim shares: sensor modalities, array shapes
and LiDAR cell codes (one definition each)."""

from __future__ import annotations

#: sensor modalities, in the column order of every per-modality mask
MODALITIES: tuple[str, ...] = ("gps", "image", "lidar")
#: GPS fix: (x, y) [m]
GPS_SHAPE: tuple[int] = (2,)
#: camera image: height x width x RGB, uint8
IMAGE_SHAPE: tuple[int, int, int] = (90, 160, 3)
#: LiDAR occupancy grid: x (along the road) x y (across) x z (up) cells
LIDAR_SHAPE: tuple[int, int, int] = (20, 20, 20)
#: LiDAR cell codes: empty, obstacle point, base station (RSU), receiver (ego vehicle)
LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_BASE_STATION, LIDAR_RECEIVER = 0, 1, -1, -2
LIDAR_VALUES: tuple[int, ...] = (LIDAR_EMPTY, LIDAR_OBSTACLE, LIDAR_BASE_STATION, LIDAR_RECEIVER)
#: shape after the sample axis, per modality
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {"gps": GPS_SHAPE, "image": IMAGE_SHAPE, "lidar": LIDAR_SHAPE}
