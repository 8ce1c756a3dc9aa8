"""Fast geometric 60 GHz channel: LoS, ground and wall reflections, point scatterers,
box blockage and (opt-in) specular reflections off the vertical faces of vehicle bodies.
Vectorised over vehicles and paths, and with
:meth:`GeometricChannel.channels_along` over the instants of one world tick (blockage
decided at the tick, every other quantity at each instant), so the engine can follow the
two-ray fading between ticks (:mod:`v2xsim.sim.resolution`) at little extra cost.

Each path's complex gain is ``sqrt(G) * lambda / (4 pi L) * 10^(-(A + O L) / 20) *
exp(-j 2 pi L / lambda)`` with ``L`` the unfolded path length [m], ``A`` the sum of the
path's reflection / scattering / blockage losses [dB] and ``O`` oxygen absorption [dB/m].
The departure angle seen by the ULA (axis x) is ``sin(theta) = dx / |d|`` of the first
leg of the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from v2xsim import checks as check
from v2xsim.channel.base import SPEED_OF_LIGHT, ChannelModel
from v2xsim.channel.codebook import DEFAULT_NUM_ANTENNAS, ula_response
from v2xsim.registry import CHANNEL
from v2xsim.geometry import OBSTACLE_KINDS, Boxes, RoadLayout, segment_hits

#: default loss [dB] of a path that crosses a box, per obstacle class, at 60 GHz: a fixed
#: attenuation per crossed box (losses of several boxes add in dB), finite, since what is
#: left of a blocked ray is the power diffracted around the body. Basis (docs/radio.md,
#: "NLoS is not silence"): single knife-edge diffraction, ITU-R P.526 J(v), at this site
#: (RSU 10 m, antennas 1.6 m), the regime of 3GPP TR 38.901 §7.6.4.2 blockage model B;
#: truck 30 dB: a 4 m truck in the next lane towards the RSU, the ray 0.7 m under its far
#: roof edge, v ~ 9, J ~ 32 dB; pedestrian 20 dB: diffraction around both sides of a
#: 0.5 m body 0.3-1 m before the antenna, ~21-26 dB, and 60 GHz body-shadowing
#: measurements of 24-26 dB (Dieng, Zaharia, El Zein 2025); car and parked car 15 dB: a
#: ray ~0.1 m inside a car's roof edge, v ~ 1.3, J ~ 16 dB (a 1.5 m car never cuts the
#: direct ray to a 1.6 m antenna here; it shadows the low legs of reflected paths, which
#: may cross deeper: ~25 dB at 0.3 m, so 15 dB is the generous end).
DEFAULT_BLOCKAGE_DB: dict[str, float] = {
    "car": 15.0,
    "truck": 30.0,
    "pedestrian": 20.0,
    "parked_car": 15.0,
}

#: default loss [dB] of a specular reflection off a vertical face of a body, per obstacle
#: class (used with ``vehicle_reflections = True``; a class absent here does not reflect).
#: Assumptions (docs/radio.md, "NLoS is not silence"): vehicle bodies are sheet metal, a
#: near-perfect reflector at 60 GHz (ITU-R P.2040 metal: |Gamma| ~ 1); the loss stands for
#: paint, glass, gaps and the curvature that spreads the reflected beam: 6 dB for cars
#: (curved doors and windows), 3 dB for the flat panels of trucks. Measured V2V reflections
#: off cars at matched antenna heights arrive within ~5 dB of the LoS power (UT Austin /
#: Toyota mmWave V2V campaign, WNCG SAVES).
DEFAULT_REFLECTION_DB: dict[str, float] = {
    "car": 6.0,
    "truck": 3.0,
    "parked_car": 6.0,
}

#: name prefix of the vehicle-face reflection paths (:attr:`Paths.names`)
FACE_PATH_PREFIX = "face:"


@dataclass(frozen=True)
class Paths:
    """Per-path description of a snapshot, K vehicles x P paths.

    Attributes:
        gain: (K, P) complex path gains.
        sin_aod: (K, P) sine of the departure angle at the RSU.
        length: (K, P) unfolded path lengths [m].
        blockage_db: (K, P) total blockage loss [dB] (0 = unblocked; inf = a vehicle-face
            reflection that does not exist for this receiver: gain 0).
        names: (P,) path labels: "los", "ground", "wall0", "wall1", "scatter<i>", then
            with ``vehicle_reflections`` "face:<box>x" / "face:<box>y" (the x- or y-facing
            side of obstacle box ``<box>`` turned to the RSU).
    """

    gain: np.ndarray
    sin_aod: np.ndarray
    length: np.ndarray
    blockage_db: np.ndarray
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Faces:
    """Vertical faces of obstacle boxes that may reflect, F of them.

    Attributes:
        box: (F,) index of the face's box in the obstacles.
        axis: (F,) 0 for a face across x (its normal along x), 1 across y.
        plane: (F,) coordinate of the face's plane along ``axis`` [m].
        image: (F, 3) mirror image of the RSU in the face's plane [m].
        lower, upper: (F, 3) corners of the face's box [m] (the face's extent).
        loss_db: (F,) reflection loss [dB].
    """

    box: np.ndarray
    axis: np.ndarray
    plane: np.ndarray
    image: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    loss_db: np.ndarray

    def __len__(self) -> int:
        return len(self.box)

    def subset(self, keep: np.ndarray) -> "_Faces":
        return _Faces(self.box[keep], self.axis[keep], self.plane[keep], self.image[keep], self.lower[keep],
                      self.upper[keep], self.loss_db[keep])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{FACE_PATH_PREFIX}{box}{'xy'[axis]}" for box, axis in zip(self.box, self.axis))


@CHANNEL.register("geometric")
class GeometricChannel(ChannelModel):
    """Built-in geometric 60 GHz backend (implements :class:`ChannelModel`).

    Args:
        layout: road geometry (RSU position, lanes, walls).
        num_antennas: RSU ULA elements Nt.
        carrier_hz: carrier frequency [Hz].
        seed: seeds the scatterer placement; same seed -> same channels.
        oxygen_db_per_km: atmospheric absorption [dB/km] (about 15 at 60 GHz).
        ground_reflection: include the ground bounce.
        ground_loss_db: ground reflection loss [dB].
        wall_loss_db: building-wall reflection loss [dB].
        num_scatterers: point scatterers (signs, poles, facades) placed at random.
        scatter_loss_db: extra loss of a scattered path [dB].
        blockage_db: loss [dB] of a path crossing a box, per obstacle class; missing
            classes use :data:`DEFAULT_BLOCKAGE_DB`.
        antenna_gain_dbi: combined element gain of RSU element and vehicle antenna [dBi].
        vehicle_reflections: add a single-bounce specular reflection off each vertical
            face of every reflecting box (image method) that faces both the RSU and the
            receiver and that the specular point lies on; default False (no such paths).
        reflection_db: reflection loss [dB] per obstacle class; the classes listed are the
            reflecting ones (default :data:`DEFAULT_REFLECTION_DB`: cars, trucks, parked
            cars; pedestrians do not reflect unless listed). A given table replaces the
            default one.
    """

    #: one vectorised evaluation for all instants of a world tick (:meth:`channels_along`)
    vectorised_tracks = True
    #: phase flip of the ground bounce at grazing incidence
    GROUND_REFLECTION_SIGN = -1.0
    #: phase of a reflection off a vehicle face: a conductor's reflection coefficient for
    #: the field component parallel to the face (-1)
    FACE_REFLECTION_SIGN = -1.0
    #: height range of the point scatterers (signs, poles, facades) [m]
    SCATTERER_HEIGHT_M = (0.5, 6.0)

    def __init__(
        self,
        *,
        layout: RoadLayout | None = None,
        num_antennas: int = DEFAULT_NUM_ANTENNAS,
        carrier_hz: float = 60e9,
        seed: int = 0,
        oxygen_db_per_km: float = 15.0,
        ground_reflection: bool = True,
        ground_loss_db: float = 6.0,
        wall_loss_db: float = 8.0,
        num_scatterers: int = 4,
        scatter_loss_db: float = 15.0,
        blockage_db: dict[str, float] | None = None,
        antenna_gain_dbi: float = 0.0,
        vehicle_reflections: bool = False,
        reflection_db: dict[str, float] | None = None,
    ) -> None:
        self.layout = layout or RoadLayout()
        self.num_antennas = check.positive_int("num_antennas", num_antennas)
        self.carrier_hz = check.positive("carrier_hz", carrier_hz)
        self.wavelength = SPEED_OF_LIGHT / self.carrier_hz
        self.oxygen_db_per_m = check.non_negative("oxygen_db_per_km", oxygen_db_per_km) / 1000.0
        self.ground_reflection = bool(ground_reflection)
        self.ground_loss_db = check.non_negative("ground_loss_db", ground_loss_db)
        self.wall_loss_db = check.non_negative("wall_loss_db", wall_loss_db)
        if int(num_scatterers) != num_scatterers or num_scatterers < 0:
            raise ValueError(f"num_scatterers must be an integer >= 0, got {num_scatterers!r}")
        self.scatter_loss_db = check.non_negative("scatter_loss_db", scatter_loss_db)
        self.antenna_gain_dbi = check.finite("antenna_gain_dbi", antenna_gain_dbi)
        losses = dict(DEFAULT_BLOCKAGE_DB)
        if not isinstance(blockage_db or {}, dict):
            raise ValueError(f"blockage_db must be a table of losses [dB] per obstacle class, got {blockage_db!r}")
        for name, value in (blockage_db or {}).items():
            if name not in losses:
                raise ValueError(f"blockage_db: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            losses[name] = check.non_negative(f"blockage_db.{name}", value)
        self.blockage_db = losses
        self._loss_by_code = np.array([losses[name] for name in OBSTACLE_KINDS])
        if not isinstance(vehicle_reflections, (bool, np.bool_)):
            raise ValueError(f"vehicle_reflections must be true or false, got {vehicle_reflections!r}")
        self.vehicle_reflections = bool(vehicle_reflections)
        if reflection_db is None:
            reflection_db = dict(DEFAULT_REFLECTION_DB)
        if not isinstance(reflection_db, dict):
            raise ValueError(f"reflection_db must be a table of reflection losses [dB] per obstacle class, "
                             f"got {reflection_db!r}")
        reflecting = {}
        for name, value in reflection_db.items():
            if name not in OBSTACLE_KINDS:
                raise ValueError(f"reflection_db: unknown obstacle class {name!r}; valid: {', '.join(OBSTACLE_KINDS)}")
            reflecting[name] = check.non_negative(f"reflection_db.{name}", value)
        self.reflection_db = reflecting
        #: reflection loss [dB] per class code, nan for classes that do not reflect
        self._reflection_by_code = np.array([reflecting.get(name, np.nan) for name in OBSTACLE_KINDS])
        self.seed = int(seed)
        self.scatterers = self._place_scatterers(np.random.default_rng(self.seed), int(num_scatterers))
        #: (obstacles, reference, rx_ids, blockage (K, P) [dB]) of the last
        #: :meth:`channels_along`: later instants of the same tick reuse the blockage
        self._blockage_memo: tuple | None = None

    def _place_scatterers(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Scatterer positions (S, 3) [m] on both street sides, spread a bit beyond coverage."""
        lay = self.layout
        x_min, x_max = lay.x_range
        span = x_max - x_min
        x = rng.uniform(x_min - 0.25 * span, x_max + 0.25 * span, count)
        far_side = rng.random(count) < 0.5
        y = np.where(far_side, lay.road_width + rng.uniform(0.5, max(lay.sidewalk_m, 0.6), count),
                     -rng.uniform(0.5, max(lay.sidewalk_m, 0.6), count))
        z = rng.uniform(*self.SCATTERER_HEIGHT_M, count)
        return np.stack([x, y, z], axis=1)

    # ------------------------------------------------------------------ paths
    def _bounces(self, rx: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Bounce points (..., P, 3) [m] of the paths to receivers ``rx`` (..., 3), the
        paths' fixed losses (P,) [dB] and their names. Every path is two legs
        tx -> bounce -> rx; the LoS "bounces" at its own midpoint."""
        tx = self.layout.rsu_position
        bounce_points: list[np.ndarray] = [0.5 * (tx + rx)]  # each (..., 3)
        fixed_loss: list[float] = [0.0]
        names: list[str] = ["los"]
        if self.ground_reflection:
            image = rx * np.array([1.0, 1.0, -1.0])
            frac = tx[2] / (tx[2] - image[..., 2])
            bounce_points.append(tx + frac[..., None] * (image - tx))
            fixed_loss.append(self.ground_loss_db)
            names.append("ground")
        walls = self.layout.wall_y
        if walls is not None:
            for index, wall in enumerate(walls):
                image = rx.copy()
                image[..., 1] = 2.0 * wall - rx[..., 1]
                frac = (wall - tx[1]) / (image[..., 1] - tx[1])
                bounce_points.append(tx + frac[..., None] * (image - tx))
                fixed_loss.append(self.wall_loss_db)
                names.append(f"wall{index}")
        for index, point in enumerate(self.scatterers):
            bounce_points.append(np.broadcast_to(point, rx.shape))
            fixed_loss.append(self.scatter_loss_db)
            names.append(f"scatter{index}")
        return np.stack(bounce_points, axis=-2), np.asarray(fixed_loss), tuple(names)

    def _blockage_db(self, rx: np.ndarray, bounce: np.ndarray, obstacles: Boxes, rx_ids: np.ndarray,
                     exclude: np.ndarray | None = None) -> np.ndarray:
        """Total penetration loss (K, P) [dB] of the paths to receivers ``rx`` (K, 3);
        ``exclude`` (P,): a box index per path that never blocks that path (the box it
        reflects off)."""
        if not len(obstacles):
            return np.zeros(bounce.shape[:-1])
        tx = self.layout.rsu_position
        rx_k = np.broadcast_to(rx[:, None, :], bounce.shape)
        crossed = segment_hits(np.broadcast_to(tx, bounce.shape), bounce, obstacles)
        crossed |= segment_hits(bounce, rx_k, obstacles)  # (K, P, B)
        crossed &= (obstacles.owner[None, :] != rx_ids[:, None])[:, None, :]
        if exclude is not None:
            crossed &= (np.arange(len(obstacles))[None, :] != exclude[:, None])[None]
        return crossed @ self._loss_by_code[obstacles.kind]

    # ---------------------------------------------------------- vehicle faces
    def _faces(self, obstacles: Boxes) -> _Faces | None:
        """The vertical faces of the reflecting boxes that are turned to the RSU (at most
        one across x and one across y per box), or None without vehicle reflections."""
        if not self.vehicle_reflections:
            return None
        loss = self._reflection_by_code[obstacles.kind]
        boxes = np.flatnonzero(~np.isnan(loss))
        tx = self.layout.rsu_position
        lower, upper = obstacles.lower[boxes], obstacles.upper[boxes]
        box_parts, axis_parts, plane_parts = [], [], []
        for axis in (0, 1):
            before = tx[axis] < lower[:, axis]  # the RSU sees the face at the lower bound
            after = tx[axis] > upper[:, axis]  # ... or the one at the upper bound
            seen = before | after
            box_parts.append(boxes[seen])
            axis_parts.append(np.full(int(seen.sum()), axis))
            plane_parts.append(np.where(before, lower[:, axis], upper[:, axis])[seen])
        box, axis, plane = (np.concatenate(parts) for parts in (box_parts, axis_parts, plane_parts))
        order = np.lexsort((axis, box))
        box, axis, plane = box[order], axis[order], plane[order]
        image = np.tile(tx, (len(box), 1))
        image[np.arange(len(box)), axis] = 2.0 * plane - tx[axis]
        return _Faces(box, axis, plane, image, obstacles.lower[box], obstacles.upper[box], loss[box])

    def _face_points(self, rx: np.ndarray, faces: _Faces) -> tuple[np.ndarray, np.ndarray]:
        """Specular points (..., F, 3) [m] on the faces for receivers ``rx`` (..., 3) (image
        method: where the line from the RSU's mirror image to the receiver meets the face's
        plane) and whether each reflection exists (..., F): the receiver is on the RSU's side
        of the plane (the face is turned to both ends) and the point lies on the face."""
        axis = faces.axis
        image_a = faces.image[np.arange(len(faces)), axis]  # (F,)
        tx_a = self.layout.rsu_position[axis]
        rx_a = rx[..., axis]  # (..., F)
        visible = (rx_a - faces.plane) * (tx_a - faces.plane) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(visible, (faces.plane - image_a) / (rx_a - image_a), 0.5)
        points = faces.image + frac[..., None] * (rx[..., None, :] - faces.image)
        across = np.arange(3)[None, :] == axis[:, None]  # (F, 3)
        points = np.where(across, faces.plane[:, None], points)  # exactly on the plane
        on_face = np.all((points >= faces.lower) & (points <= faces.upper), axis=-1)
        return points, visible & on_face

    def _face_paths(self, rx: np.ndarray, faces: _Faces, obstacles: Boxes,
                    rx_ids: np.ndarray) -> tuple[_Faces, np.ndarray]:
        """The faces that reflect towards at least one of the receivers ``rx`` (K, 3), and
        their blockage (K, F') [dB]: legs crossing other boxes lose those boxes' losses,
        inf where the reflection does not exist for a receiver (gain 0). A vehicle's own
        body never reflects its own links."""
        # the specular point lies between the heights of the RSU and the receiver: a face
        # entirely below every receiver (a car body under the roof antennas) never reflects
        tx_z = self.layout.rsu_position[2]
        reach = (faces.upper[:, 2] >= min(tx_z, rx[:, 2].min(initial=np.inf))) & \
                (faces.lower[:, 2] <= max(tx_z, rx[:, 2].max(initial=-np.inf)))
        faces = faces.subset(reach)
        if not len(faces):
            return faces, np.zeros((len(rx), 0))
        points, valid = self._face_points(rx, faces)  # (K, F, 3), (K, F)
        valid &= obstacles.owner[faces.box][None, :] != rx_ids[:, None]
        keep = valid.any(axis=0)
        faces, points, valid = faces.subset(keep), points[:, keep], valid[:, keep]
        if not len(faces):
            return faces, np.zeros((len(rx), 0))
        blockage = self._blockage_db(rx, points, obstacles, rx_ids, exclude=faces.box)
        return faces, np.where(valid, blockage, np.inf)

    def _gains(self, rx: np.ndarray, bounce: np.ndarray, fixed_loss: np.ndarray, blockage: np.ndarray,
               names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Complex gains, sine of the departure angle and unfolded lengths, each (..., P),
        of the paths to ``rx`` (..., 3) via ``bounce`` (..., P, 3) with the given losses."""
        tx = self.layout.rsu_position
        first = bounce - tx
        second = rx[..., None, :] - bounce
        # Euclidean norms, as np.linalg.norm computes them (bit for bit), without its overhead
        first_length = np.sqrt(np.add.reduce(first * first, axis=-1))
        length = first_length + np.sqrt(np.add.reduce(second * second, axis=-1))
        sin_aod = first[..., 0] / np.maximum(first_length, 1e-9)
        loss_db = fixed_loss + blockage + self.oxygen_db_per_m * length - self.antenna_gain_dbi
        amplitude = self.wavelength / (4.0 * math.pi * np.maximum(length, 1e-3)) * 10.0 ** (-loss_db / 20.0)
        # the ground bounce flips the phase (grazing incidence), as does a metal face
        sign = np.where(np.array(names) == "ground", self.GROUND_REFLECTION_SIGN, 1.0)
        if self.vehicle_reflections:
            face = np.array([name.startswith(FACE_PATH_PREFIX) for name in names], dtype=bool)
            sign = np.where(face, self.FACE_REFLECTION_SIGN, sign)
        gain = sign * amplitude * np.exp(-2j * math.pi * length / self.wavelength)
        return gain, sin_aod, length

    @staticmethod
    def _receivers(rx_positions: np.ndarray, obstacles: Boxes | None, rx_ids: np.ndarray | None,
                   num_rx: int) -> tuple[Boxes, np.ndarray]:
        obstacles = obstacles if obstacles is not None else Boxes.empty()
        rx_ids = np.arange(num_rx) if rx_ids is None else np.asarray(rx_ids, dtype=int).reshape(-1)
        if len(rx_ids) != num_rx:
            raise ValueError(f"rx_ids must have length K={num_rx}, got {len(rx_ids)}")
        return obstacles, rx_ids

    def paths(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
              rx_ids: np.ndarray | None = None) -> Paths:
        """All paths of a snapshot (see :class:`Paths`)."""
        rx = np.asarray(rx_positions, dtype=float).reshape(-1, 3)
        check.finite_array("rx_positions", rx)
        obstacles, rx_ids = self._receivers(rx, obstacles, rx_ids, len(rx))
        bounce, fixed_loss, names = self._bounces(rx)  # (K, P, 3)
        blockage = self._blockage_db(rx, bounce, obstacles, rx_ids)
        faces = self._faces(obstacles)
        if faces is not None:
            faces, face_blockage = self._face_paths(rx, faces, obstacles, rx_ids)
        if faces is not None and len(faces):
            bounce = np.concatenate([bounce, self._face_points(rx, faces)[0]], axis=-2)
            fixed_loss = np.concatenate([fixed_loss, faces.loss_db])
            blockage = np.concatenate([blockage, face_blockage], axis=-1)
            names = names + faces.names
        gain, sin_aod, length = self._gains(rx, bounce, fixed_loss, blockage, names)
        return Paths(gain, sin_aod, length, blockage, names)

    # --------------------------------------------------------------- channels
    def channels(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                 rx_ids: np.ndarray | None = None) -> np.ndarray:
        """Channel vectors (K, Nt) complex; see :class:`v2xsim.channel.base.ChannelModel`."""
        paths = self.paths(rx_positions, obstacles, rx_ids)
        response = ula_response(self.num_antennas, paths.sin_aod)  # (K, P, Nt)
        return np.einsum("kp,kpn->kn", paths.gain, response)

    def channels_along(self, rx_positions: np.ndarray, obstacles: Boxes | None = None,
                       rx_ids: np.ndarray | None = None, *, reference: np.ndarray | None = None) -> np.ndarray:
        """Channels (T, K, Nt) of K receivers at T instants of one world tick, in one
        vectorised evaluation (see :meth:`ChannelModel.channels_along`).

        Which boxes block which path is decided at ``reference`` (default
        ``rx_positions[0]``) and held for every instant (between two ticks a vehicle moves a
        few centimetres, a body is metres long); lengths, phases, angles and spreading follow
        every position, so ``channels_along(p[None])[0]`` equals ``channels(p)`` up to
        rounding. With ``vehicle_reflections`` the same holds for the face reflections:
        which face reflects to which receiver (and its blockage) is decided at
        ``reference``, the specular points follow every position. The blockage of the last
        ``(reference, obstacles, rx_ids)`` is kept, so
        further instants of the same tick cost no new box tests.
        """
        rx = np.asarray(rx_positions, dtype=float)
        if rx.ndim != 3 or rx.shape[-1] != 3:
            raise ValueError(f"rx_positions must have shape (T, K, 3), got {rx.shape}")
        check.finite_array("rx_positions", rx)
        if len(rx) == 0:
            return np.zeros((0, rx.shape[1], self.num_antennas), dtype=complex)
        reference = rx[0] if reference is None else np.asarray(reference, dtype=float)
        if reference.shape != rx.shape[1:]:
            raise ValueError(f"reference must have shape {rx.shape[1:]}, got {reference.shape}")
        obstacles, rx_ids = self._receivers(reference, obstacles, rx_ids, rx.shape[1])
        memo = self._blockage_memo
        if (memo is not None and memo[0] is obstacles and np.array_equal(memo[1], reference)
                and np.array_equal(memo[2], rx_ids)):
            blockage, faces = memo[3], memo[4]
            bounce, fixed_loss, names = self._bounces(rx)  # (T, K, P, 3)
        else:  # the reference's paths ride along as instant -1
            bounce, fixed_loss, names = self._bounces(np.concatenate([rx, reference[None]]))
            blockage = self._blockage_db(reference, bounce[-1], obstacles, rx_ids)
            # which faces reflect to whom is decided at the reference too, like blockage
            faces = self._faces(obstacles)
            if faces is not None:
                faces, face_blockage = self._face_paths(reference, faces, obstacles, rx_ids)
                blockage = np.concatenate([blockage, face_blockage], axis=-1) if len(faces) else blockage
            self._blockage_memo = (obstacles, reference.copy(), rx_ids.copy(), blockage, faces)
            bounce = bounce[:-1]
        if faces is not None and len(faces):  # the specular points follow every position
            bounce = np.concatenate([bounce, self._face_points(rx, faces)[0]], axis=-2)
            fixed_loss = np.concatenate([fixed_loss, faces.loss_db])
            names = names + faces.names
        gain, sin_aod, _ = self._gains(rx, bounce, fixed_loss, blockage, names)  # (T, K, P)
        return self._superpose(gain, sin_aod)

    def _superpose(self, gain: np.ndarray, sin_aod: np.ndarray) -> np.ndarray:
        """``h[..., n] = sum_p gain[..., p] exp(j pi n sin_aod[..., p])`` (..., Nt): the
        paths seen by the half-wavelength ULA (:func:`ula_response`), its element phases
        built by successive steps ``z^n = z^(n-1) z``, equal up to rounding and several times
        faster on the many instants of a tick."""
        step = np.exp(1j * math.pi * sin_aod)
        term = gain.astype(complex, copy=True)
        h = np.empty(gain.shape[:-1] + (self.num_antennas,), dtype=complex)
        for element in range(self.num_antennas):
            h[..., element] = term.sum(axis=-1)
            if element + 1 < self.num_antennas:
                term *= step
        return h
