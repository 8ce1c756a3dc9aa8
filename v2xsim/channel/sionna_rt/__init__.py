"""Sionna RT channel backend (ray-traced channels, camera and LiDAR from one 3-D scene)."""

from v2xsim.channel.sionna_rt.backend import RTPaths, SionnaRTChannel, camera_rays, import_sionna, locate_libllvm

__all__ = ["RTPaths", "SionnaRTChannel", "camera_rays", "import_sionna", "locate_libllvm"]
