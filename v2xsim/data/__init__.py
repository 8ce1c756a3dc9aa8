"""Data sets: the FLASH loader / writer (:mod:`v2xsim.data.flash`) and FLASH-like data."""

from v2xsim.data.flash import (
    CATEGORIES,
    EpisodeFolder,
    active_sectors,
    find_episodes,
    load_flash,
    save_flash_episode,
    split_episode,
    split_indices,
)

__all__ = [
    "CATEGORIES",
    "EpisodeFolder",
    "active_sectors",
    "find_episodes",
    "load_flash",
    "save_flash_episode",
    "split_episode",
    "split_indices",
]
