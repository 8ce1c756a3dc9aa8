"""Sionna RT backend: agreement with the geometric backend on LoS, blockage by moved
boxes, cache, determinism, scene handling. Tests that trace need sionna-rt (installed by
``make setup``); they are skipped, with the reason, only when it cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from v2xsim.channel.base import ChannelModel
from v2xsim.channel.codebook import dft_codebook
from v2xsim.channel.geometric import GeometricChannel
from v2xsim.channel.sionna_rt.scenes import BUILTIN_SCENES, adapt_itu_materials, builtin_scene_xml
from v2xsim.channel.sionna_rt import SionnaRTChannel
from v2xsim.errors import ConfigError
from v2xsim.registry import CHANNEL
from v2xsim.geometry import Boxes, RoadLayout, on_ground, random_drop
from sionna_available import SIONNA_ERROR, needs_sionna

pytestmark = pytest.mark.slow  # ray tracing


LAYOUT = RoadLayout(buildings=False)
CODEBOOK = dft_codebook(16, 34)
# off the 2 cm grid on purpose: the channel is extrapolated from the traced grid point
POSITIONS = np.array([[-15.0, 1.75, 1.6], [-6.013, 5.25, 1.6], [0.3, 8.75, 1.6],
                      [7.007, 1.75, 1.6], [13.99, 5.25, 1.6]])


def gain_db(h: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.sum(np.abs(h) ** 2, axis=1) / h.shape[1])


def best_beam(h: np.ndarray) -> np.ndarray:
    return np.argmax(np.abs(h.conj() @ CODEBOOK) ** 2, axis=1)


def best_beam_gain_db(h: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.max(np.abs(h.conj() @ CODEBOOK) ** 2, axis=1) + 1e-30)


@pytest.fixture(scope="module")
def geometric_los() -> GeometricChannel:
    return GeometricChannel(layout=LAYOUT, ground_reflection=False, num_scatterers=0)


@pytest.fixture(scope="module")
def rt_los() -> SionnaRTChannel:
    """Ground plane only, line-of-sight paths only."""
    return SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=0, cache=False)


@pytest.fixture(scope="module")
def rt_ground() -> SionnaRTChannel:
    """Ground plane only, one bounce (LoS + ground reflection + transmission)."""
    return SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache=False)


# ----------------------------------------------------------------- no tracing needed
def test_sionna_is_usable_in_ci():
    """CI installs sionna-rt and libllvm19 (make setup): a skip there would hide a broken set-up."""
    if SIONNA_ERROR is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"sionna-rt must be usable in CI: {SIONNA_ERROR}")
        pytest.skip(f"sionna-rt not importable: {SIONNA_ERROR}")


def test_importing_the_backend_does_not_import_sionna():
    code = textwrap.dedent("""
        import sys
        import v2xsim
        from v2xsim.channel.sionna_rt import SionnaRTChannel
        SionnaRTChannel(scene="empty")
        heavy = [m for m in ("sionna", "mitsuba", "drjit") if m in sys.modules]
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_scene_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"scene: unknown built-in scene 'canyon'.*street_canyon.*empty"):
        SionnaRTChannel(scene="canyon")


def test_missing_xml_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "street.xml"
    with pytest.raises(ConfigError, match=r"scene: Mitsuba XML file not found: .*nowhere/street\.xml"):
        SionnaRTChannel(scene=str(missing))


def test_builtin_scenes_follow_the_layout():
    assert set(BUILTIN_SCENES) == {"street_canyon", "empty"}
    empty = builtin_scene_xml("empty", LAYOUT, 0)
    assert [s.get("id") for s in empty.iter("shape")] == ["v2x-ground"]
    canyon = builtin_scene_xml("street_canyon", RoadLayout(), 0)
    ids = [s.get("id") for s in canyon.iter("shape")]
    assert any(i.startswith("v2x-building-0") for i in ids) and any(i.startswith("v2x-building-1") for i in ids)
    assert ET.tostring(canyon) == ET.tostring(builtin_scene_xml("street_canyon", RoadLayout(), 0))
    assert ET.tostring(canyon) != ET.tostring(builtin_scene_xml("street_canyon", RoadLayout(), 1))


# ----------------------------------------------------------------- tracing
@needs_sionna
def test_registered_and_implements_the_protocol(rt_los):
    assert CHANNEL.get("sionna_rt") is SionnaRTChannel
    assert isinstance(rt_los, ChannelModel)


@needs_sionna
def test_materials_invalid_at_60ghz_are_replaced():
    root = ET.fromstring(textwrap.dedent("""
        <scene version="2.1.0">
          <bsdf type="itu-radio-material" id="wall"><string name="type" value="brick"/></bsdf>
          <bsdf type="itu-radio-material" id="mat-itu_marble"/>
          <bsdf type="itu-radio-material" id="floor"><string name="type" value="floorboard"/>
            <float name="thickness" value="0.02"/></bsdf>
          <bsdf type="itu-radio-material" id="ok"><string name="type" value="concrete"/></bsdf>
        </scene>"""))
    changes = adapt_itu_materials(root, 60e9)
    assert changes["wall"] == "brick -> concrete"
    assert changes["mat-itu_marble"] == "marble -> concrete"
    assert changes["floor"].startswith("floorboard -> constant floorboard")
    assert "ok" not in changes
    floor = root.find("bsdf[@id='floor']")
    assert floor.get("type") == "radio-material" and floor.find("float[@name='thickness']") is not None


@needs_sionna
def test_los_gain_and_best_beam_match_the_geometric_backend(rt_los, geometric_los):
    h_rt = rt_los.channels(POSITIONS)
    h_geo = geometric_los.channels(POSITIONS)
    assert h_rt.shape == (len(POSITIONS), 16)
    np.testing.assert_allclose(gain_db(h_rt), gain_db(h_geo), atol=1.0)
    np.testing.assert_array_equal(best_beam(h_rt), best_beam(h_geo))


@needs_sionna
def test_los_path_matches_with_the_ground_bounce_traced(rt_ground, geometric_los):
    paths = rt_ground.paths(POSITIONS)
    assert np.all(paths.los.sum(axis=1) == 1)
    assert np.all((paths.valid & (paths.depth == 1)).any(axis=1)), "the ground reflection is missing"
    los_rt = np.sum(np.where(paths.los, paths.gain, 0), axis=1)
    geo = geometric_los.paths(POSITIONS)
    los_geo = geo.gain[:, geo.names.index("los")]
    np.testing.assert_allclose(20 * np.log10(np.abs(los_rt)), 20 * np.log10(np.abs(los_geo)), atol=1.0)
    sin_rt = np.sum(np.where(paths.los, paths.sin_aod, 0), axis=1)
    np.testing.assert_allclose(sin_rt, geo.sin_aod[:, 0], atol=1e-3)


@needs_sionna
@pytest.mark.parametrize("kind", ["car", "truck", "pedestrian"])
def test_box_moved_into_the_los_segment_blocks_it(rt_ground, kind):
    rsu = LAYOUT.rsu_position
    rx = np.array([[8.0, 8.75, 1.6]])
    h_free = rt_ground.channels(rx, Boxes.empty(), np.array([0]))
    point = rsu + 0.9 * (rx[0] - rsu)  # near the receiver, low on the segment
    size = (1.0, 1.0, 2 * point[2] + 0.5)
    # a box of another vehicle (owner 7) or of nobody must block vehicle 0
    blocker = on_ground(kind, [point[0]], [point[1]], size=size, owner=[7] if kind == "car" else None)
    parked = on_ground("parked_car", [-30.0], [LAYOUT.road_width + 0.9])  # far away: no effect
    h_blocked = rt_ground.channels(rx, Boxes.concat(blocker, parked), np.array([0]))
    assert not rt_ground.paths(rx, blocker, np.array([0])).los.any()
    drop = best_beam_gain_db(h_free) - best_beam_gain_db(h_blocked)
    assert best_beam(h_free)[0] != best_beam(h_blocked)[0] or drop[0] > 10.0, drop


@needs_sionna
def test_own_body_does_not_block_and_receiver_inside_is_raised(rt_ground):
    rx = np.array([[5.0, 5.25, 1.6]])
    truck = on_ground("truck", [5.0], [5.25], owner=[3])  # 4 m tall, antenna inside
    own = rt_ground.paths(rx, truck, np.array([3]))
    assert own.los.any(), "a vehicle's own body must not block its line of sight"
    other = rt_ground.paths(rx, truck, np.array([4]))
    assert not other.valid.any(), "inside someone else's truck nothing arrives"


@needs_sionna
def test_cache_hit_returns_identical_arrays_across_instances(tmp_path):
    drop = random_drop(np.random.default_rng(5), LAYOUT, 6)
    args = (drop.positions, drop.obstacles, drop.ids)
    first = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache_dir=tmp_path)
    h1 = first.channels(*args)
    assert first.trace_count == 1 and len(first.cache) == 1
    h2 = first.channels(*args)
    assert first.trace_count == 1 and first.cache.hits == 1
    np.testing.assert_array_equal(h1, h2)
    # a new run (new instance, same configuration) reuses the entry on disk
    second = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.channels(*args), h1)
    assert second.trace_count == 0
    # the same result as without any cache
    uncached = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache=False)
    np.testing.assert_array_equal(uncached.channels(*args), h1)
    # a different configuration does not share entries
    other = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=0, cache_dir=tmp_path)
    other.channels(*args)
    assert other.trace_count == 1


@needs_sionna
def test_moves_within_a_grid_cell_hit_the_cache_and_are_extrapolated(tmp_path):
    channel = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache_dir=tmp_path)
    exact = SionnaRTChannel(layout=LAYOUT, scene="empty", max_depth=1, cache=False, rx_quantum_m=0.0)
    base = np.array([[6.0, 5.0, 1.6], [-9.0, 8.0, 1.6]])  # cell centres
    channel.channels(base)
    moved = base + np.array([0.008, -0.006, 0.004])  # 1.1 cm: 2 wavelengths, same 2 cm cell
    h_moved = channel.channels(moved)
    assert channel.trace_count == 1, "a move inside the grid cell must not retrace"
    h_exact = exact.channels(moved)
    error = np.linalg.norm(h_moved - h_exact, axis=1) / np.linalg.norm(h_exact, axis=1)
    assert np.all(error < 0.05), error
    # without the Doppler phase correction the error would be of order 1
    assert np.all(np.linalg.norm(channel.channels(base) - h_exact, axis=1) / np.linalg.norm(h_exact, axis=1) > 0.3)


@needs_sionna
def test_same_seed_gives_identical_channels_in_the_street_canyon():
    layout = RoadLayout()
    drop = random_drop(np.random.default_rng(11), layout, 8, num_trucks=1, num_pedestrians=2, num_parked_cars=1)
    args = (drop.positions, drop.obstacles, drop.ids)
    make = lambda: SionnaRTChannel(layout=layout, scene="street_canyon", max_depth=2, seed=4, cache=False,  # noqa: E731
                                   pool_sizes={"car": 4})
    a, b = make(), make()
    h_a = a.channels(*args)
    np.testing.assert_array_equal(h_a, b.channels(*args))
    assert a.rt_scene.pool_sizes["car"] >= 8  # the pool grew for 8 cars
    assert np.all(np.isfinite(h_a)) and np.all(gain_db(h_a) > -160)
    # buildings add reflected paths beyond the ground bounce
    assert a.paths(*args).valid.sum(axis=1).max() > 2
    # boxes are placed by geometry, not by their order in the input
    order = np.arange(len(drop.obstacles))[::-1]
    obstacles = drop.obstacles
    shuffled = Boxes(obstacles.centre[order], obstacles.size[order], obstacles.kind[order], obstacles.owner[order])
    np.testing.assert_array_equal(a.channels(drop.positions, shuffled, drop.ids), h_a)


@needs_sionna
def test_user_xml_scene_with_relative_mesh_and_old_materials(tmp_path):
    (tmp_path / "meshes").mkdir()
    # a 1 m^2 square in the z = 0 plane as an ASCII PLY, scaled into a wall by to_world
    (tmp_path / "meshes" / "square.ply").write_text(textwrap.dedent("""\
        ply
        format ascii 1.0
        element vertex 4
        property float x
        property float y
        property float z
        element face 2
        property list uchar int vertex_indices
        end_header
        -0.5 -0.5 0
        0.5 -0.5 0
        0.5 0.5 0
        -0.5 0.5 0
        3 0 1 2
        3 0 2 3
        """))
    scene = tmp_path / "street.xml"
    scene.write_text(textwrap.dedent("""\
        <scene version="2.1.0">
          <bsdf type="itu-radio-material" id="mat-itu_brick"/>
          <bsdf type="itu-radio-material" id="stone"><string name="type" value="marble"/></bsdf>
          <shape type="cube" id="floor">
            <transform name="to_world"><scale x="100" y="100" z="0.1"/><translate z="-0.1"/></transform>
            <ref id="stone" name="bsdf"/>
          </shape>
          <shape type="ply" id="far-wall">
            <string name="filename" value="meshes/square.ply"/>
            <transform name="to_world"><scale x="60" y="15"/><rotate x="1" angle="90"/>
              <translate y="13.5" z="7.5"/></transform>
            <ref id="mat-itu_brick" name="bsdf"/>
          </shape>
        </scene>"""))
    channel = SionnaRTChannel(layout=LAYOUT, scene=str(scene), max_depth=1, cache_dir=tmp_path / "cache")
    paths = channel.paths(POSITIONS[:2])
    assert channel.material_changes == {"mat-itu_brick": "brick -> concrete", "stone": "marble -> concrete"}
    # LoS, ground bounce and the wall reflection reach both receivers
    assert np.all(paths.valid.sum(axis=1) >= 3)
    assert np.all(np.isfinite(channel.channels(POSITIONS[:2])))


@needs_sionna
def test_malformed_xml_file_is_named(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<scene version='2.1.0'><shape type='cube'>")
    channel = SionnaRTChannel(scene=str(broken), cache=False)
    with pytest.raises(ConfigError, match=r"broken\.xml"):
        channel.channels(POSITIONS[:1])


@needs_sionna
def test_unknown_box_material_is_named():
    channel = SionnaRTChannel(scene="empty", box_materials={"car": "steel"}, cache=False)
    with pytest.raises(ConfigError, match=r"box_materials\.car: unknown material 'steel'"):
        channel.channels(POSITIONS[:1])
