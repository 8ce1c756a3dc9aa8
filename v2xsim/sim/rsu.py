"""The RSU alignment loop of one scheme and the bookkeeping of delivered bits.

One alignment cycle (a SimPy process, :meth:`SchemeRunner.run`):

1. acquisition: exhaustive sweep (W beam slots), on-vehicle sensing, or nothing (genie);
2. feedback: sensing schemes' vehicle side turns what each car knows (its own sensor
   readings, or its true RSS for a perfect predictor) into its bits; every vehicle sends
   its bits over the back channel, a SimPy resource that serves one message at a time
   (airtime = bits / rate + MAC access overhead);
3. RSU computation: the scheme's RSU side sees only the reports (and the true channels
   only if it declares ``needs_csi``); configured time, or the measured wall time;
4. data phase: the new beams serve the vehicles until the cycle's realignment time;
   beams whose alignment took longer than the coherence period are already stale and
   deliver nothing.

Every snapshot the runner takes is the world at that instant (:meth:`World.snapshot` at
``env.now``): each slot of a sweep measures its beam on the channel of its own time, an
alignment decides on the channel of its instant. With channel aging, the rate of the
serving beams is evaluated at every sample of the tick in one batch
(:meth:`SchemeRunner._rates_along`); it is piecewise constant over the sub-steps of the
tick and integrated exactly. Besides the per-cycle records, the runner keeps
whole-window totals (delivered bits, serving time, aligning time) that include time with
an empty road and the last, unfinished cycle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import simpy

from v2xsim.geometry import Snapshot
from v2xsim.metrics import gain_matrix, rates_from_gains, rss_vector, shannon_rate
from v2xsim.schemes.base import Allocation, Observation, Scheme, VehicleInputs
from v2xsim.sensing import sense
from v2xsim.sim.world import Samples, World
from v2xsim.timing import RealignmentPolicy, TimingModel


def _rows_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each of ``wanted`` in ``ids`` (all must be present)."""
    order = np.argsort(ids)
    return order[np.searchsorted(ids, wanted, sorter=order)]


@dataclass
class Cycle:
    """Record of one alignment cycle (one row of the event log)."""

    scheme: str
    start_s: float
    delay_s: float
    period_s: float
    vehicles: int
    reporting: int
    served: int
    apply_sum_rate: float
    bits: float = 0.0  # integral of the sum rate [bit/s/Hz x s]
    data_time_s: float = 0.0
    complete: bool = True  # False: the cycle was still running when the window closed

    @property
    def length_s(self) -> float:
        return max(self.period_s, self.delay_s)


class SchemeRunner:
    """Runs one scheme's alignment loop against the shared world.

    Args:
        env: the simulation environment.
        world: the shared road.
        scheme: the scheme plug-in.
        label: name in results.
        timing: alignment step durations.
        policy: realignment policy.
        aging: follow the channel at every sample of the world (else hold the rate of the
            channel measured at the alignment: "frozen channel").
        compute_s: configured RSU computation time [s], or None to use the measured wall
            time of the scheme's call (not reproducible bit for bit).
        rng: the scheme's random generator.
        measurement_rng: generator of the sweep measurement noise (a non-ideal
            ``radio.measurement``); None: a child of ``rng`` (``rng.spawn``, which leaves
            ``rng``'s own draws as they are). Never used with the ideal measurement.
    """

    def __init__(self, *, env: simpy.Environment, world: World, scheme: Scheme, label: str,
                 timing: TimingModel, policy: RealignmentPolicy, aging: bool,
                 compute_s: float | None, rng: np.random.Generator,
                 measurement_rng: np.random.Generator | None = None) -> None:
        self.env = env
        self.world = world
        self.scheme = scheme
        self.label = label
        self.timing = timing
        self.policy = policy
        self.aging = aging
        self.compute_s = compute_s
        self.rng = rng
        if measurement_rng is None and not world.radio.measurement.ideal:
            measurement_rng = rng.spawn(1)[0]
        self.measurement_rng = measurement_rng
        self.backchannel = simpy.Resource(env, capacity=1)
        self.cycles: list[Cycle] = []
        self._cycle: Cycle | None = None
        self._serving: tuple[np.ndarray, np.ndarray] | None = None  # ids (A,), precoders (Nt, A)
        #: sum rate of the serving beams [bit/s/Hz] in each sub-step of ``_samples`` (one
        #: value held throughout when ``_samples`` is None: frozen channel)
        self._rates = np.zeros(1)
        self._samples: Samples | None = None
        self._last = 0.0
        #: whole-window totals: integral of the sum rate [bit/s/Hz x s], time with beams
        #: serving [s], time spent aligning [s]
        self.delivered = 0.0
        self.serving_s = 0.0
        self.aligning_s = 0.0
        self._aligning_since: float | None = None
        self.process = env.process(self.run())

    # ---------------------------------------------------------- accounting
    def accrue(self) -> None:
        """Add the bits delivered since the last call at the current rate."""
        now = self.env.now
        if self._serving is not None and self._cycle is not None:
            if self._samples is None:
                bits = float(self._rates[0]) * (now - self._last)
            else:
                bits = self._samples.integral(self._rates, self._last, now)
            self._cycle.bits += bits
            self._cycle.data_time_s += now - self._last
            self.delivered += bits
            self.serving_s += now - self._last
        self._last = now

    def finish(self) -> None:
        """Close the measurement window at the current time: integrate the last, unfinished
        cycle's bits and count an alignment still in progress as aligning time."""
        self.accrue()
        if self._aligning_since is not None:
            self.aligning_s += self.env.now - self._aligning_since
            self._aligning_since = None
        if self._cycle is not None:  # in its data phase: logged, marked unfinished
            self._cycle.complete = False
            self.cycles.append(self._cycle)
            self._cycle = None

    def world_changed(self) -> None:
        """Called by the world tick after vehicles moved: integrate, then re-rate on the
        new tick's samples."""
        self.accrue()
        if self._serving is not None and self.aging:
            self._follow_channel()

    def _follow_channel(self) -> None:
        """Rates of the serving beams at every sample of the world's current tick."""
        self._samples = self.world.samples()
        self._rates = self._rates_along(self._serving, self._samples)

    def _rate_of(self, serving: tuple[np.ndarray, np.ndarray], snap: Snapshot) -> float:
        """Sum rate [bit/s/Hz] of beams ``serving = (ids (A,), precoders (Nt, A))`` for the
        cars of ``snap`` among ``ids``; beams of cars that have left still interfere."""
        ids, t = serving
        if t.shape[1] == 0 or len(snap.ids) == 0:
            return 0.0
        present = np.isin(ids, snap.ids)
        if not present.any():
            return 0.0
        rows = snap.rows_of(ids[present])
        gains = gain_matrix(snap.channels[rows], t)  # (P, A)
        return float(rates_from_gains(gains, self.world.radio.noise_power, columns=np.flatnonzero(present)).sum())

    def _rates_along(self, serving: tuple[np.ndarray, np.ndarray], samples: Samples) -> np.ndarray:
        """Sum rate [bit/s/Hz] of ``serving`` at each of the world's samples, (n,): sample
        by sample what :meth:`_rate_of` gives on that sample's snapshot, in one batch."""
        ids, t = serving
        if t.shape[1] == 0 or len(samples.ids) == 0:
            return np.zeros(len(samples))
        present = np.isin(ids, samples.ids)
        if not present.any():
            return np.zeros(len(samples))
        rows = _rows_of(samples.ids, ids[present])
        gains = np.abs(samples.channels[:, rows].conj() @ t) ** 2  # (n, P, A), as metrics.gain_matrix
        users = np.arange(len(rows))
        signal = gains[:, users, np.flatnonzero(present)]
        interference = gains.sum(axis=-1) - signal  # every beam interferes, as metrics.rates_from_gains
        return shannon_rate(signal, interference, self.world.radio.noise_power).sum(axis=-1)

    # ------------------------------------------------------------- process
    def _vehicle_inputs(self, snap: Snapshot, keep: np.ndarray, sensors: dict[str, np.ndarray] | None
                        ) -> VehicleInputs:
        """What the reporting vehicles know, for the vehicle side of a sensing scheme."""
        radio = self.world.radio
        true_rss = None
        if self.scheme.knows_true_feedback:
            true_rss = rss_vector(snap.channels[keep], radio.codebook, radio.p_max)
        return VehicleInputs(ids=snap.ids[keep], sensors=sensors, true_rss=true_rss,
                             feedback_threshold=radio.feedback_threshold, rng=self.rng)

    def _observe(self, snap: Snapshot, keep: np.ndarray, rss: np.ndarray | None,
                 feedback: np.ndarray | None) -> Observation:
        """What the RSU side may use: the reports of the vehicles, and the true channels
        only for genie schemes. The codebook is the beams the RSU believes it sends: the
        array's real beams for genie schemes and a calibrated (or ideal) array, the
        nominal codebook otherwise (:attr:`Radio.model_codebook`)."""
        radio = self.world.radio
        return Observation(
            codebook=radio.codebook if self.scheme.needs_csi else radio.model_codebook,
            p_max=radio.p_max, noise_power=radio.noise_power,
            feedback_threshold=radio.feedback_threshold,
            channels=snap.channels[keep] if self.scheme.needs_csi else None,
            rss=rss, feedback=feedback, rng=self.rng,
        )

    def _sense(self, snap: Snapshot) -> dict[str, np.ndarray]:
        """Every car's own sensor readings of ``snap`` (GPS, camera, LiDAR), rows as in
        ``snap.ids``, with the scheme's sensors. A channel backend with its own 3-D scene
        (e.g. Sionna RT) renders them from that scene; otherwise the geometric sensors of
        :mod:`v2xsim.sensing` see the boxes of the world."""
        scene = self.world.channel.scene_sensor()
        render = scene.sense if scene is not None else sense
        return render(self.world.layout, snap, self.rng, config=self.scheme.sensor_config)

    def _sweep(self, members: np.ndarray, rss: np.ndarray):
        """Process: beam i is sent in slot i; each vehicle records its RSS [W] with the
        channel of that moment, so motion during the sweep is part of the measurement."""
        radio = self.world.radio
        slot = self.timing.beam_slot_s
        if slot > 0:
            instants = [self.env.now]
            for _ in range(radio.num_beams - 1):
                instants.append(instants[-1] + slot)  # as SimPy adds the timeouts below
            self.world.expect(instants)
        for beam in range(radio.num_beams):
            self._measure_beam(members, beam, rss)
            if slot > 0:
                yield self.env.timeout(slot)

    def _measure_beam(self, members: np.ndarray, beam: int, rss: np.ndarray) -> None:
        """Fill ``rss[:, beam]`` for the members still on the road, channel of now: the
        received power of the array's real beam, as the vehicles measure it from the SSW
        frame (:meth:`Radio.measure`; exact with the ideal measurement)."""
        ids, channels = self.world.channels_at(self.env.now)
        present = np.isin(members, ids)
        if present.any():
            h = channels[_rows_of(ids, members[present])]
            radio = self.world.radio
            power = radio.p_max * np.abs(h.conj() @ radio.codebook[:, beam]) ** 2
            rss[present, beam] = radio.measure(power, self.measurement_rng)

    def _send(self, bits: int):
        with self.backchannel.request() as request:
            yield request
            yield self.env.timeout(self.timing.airtime(bits))

    def run(self):
        env, world, radio = self.env, self.world, self.world.radio
        while True:
            snap = world.snapshot(env.now)
            if len(snap.ids) == 0:
                # empty road: sleep until a vehicle enters
                arrival = env.event()
                world.arrival_events.append(arrival)
                yield arrival
                continue
            start = env.now
            self._aligning_since = start
            period = self.policy.period(snap.speeds, coverage_length_m=world.layout.coverage_length,
                                        num_beams=radio.num_beams)
            members = snap.ids.copy()
            rss = None
            sensors = None
            if self.scheme.acquisition == "sweep":
                rss = np.zeros((len(members), radio.num_beams))
                yield env.process(self._sweep(members, rss))
            elif self.scheme.acquisition == "sensing":
                # each car captures its sensors at the start; capture, on-vehicle
                # inference and the bits' preparation take ``sensing_s``
                if self.scheme.uses_sensors:
                    sensors = self._sense(snap)
                yield env.timeout(self.timing.sensing_s)
            measured = world.snapshot(env.now)
            still_here = np.isin(members, measured.ids)
            ids = members[still_here]
            keep = measured.rows_of(ids)
            if rss is not None:
                rss = rss[still_here]
            if sensors is not None:
                sensors = {name: value[still_here] for name, value in sensors.items()}
            feedback = None
            if self.scheme.acquisition == "sensing" and len(ids):
                # vehicle side: each car turns what it knows into its W feedback bits
                feedback = self.scheme.vehicle_feedback(self._vehicle_inputs(measured, keep, sensors))
            observation = self._observe(measured, keep, rss, feedback)
            bits = self.scheme.feedback_bits(radio.num_beams)
            if bits > 0 and len(ids):
                yield env.all_of([env.process(self._send(bits)) for _ in ids])
            wall = time.perf_counter()
            allocation = self.scheme.allocate(observation) if len(ids) else Allocation.empty()
            wall = time.perf_counter() - wall
            compute = wall if self.compute_s is None else self.compute_s
            if compute > 0:
                yield env.timeout(compute)
            delay = env.now - start
            self.aligning_s += delay
            self._aligning_since = None
            precoders = allocation.precoders(radio.codebook)
            serving = (ids, precoders)
            apply_rate = self._rate_of(serving, measured)  # on the channel the beams were chosen for
            cycle = Cycle(scheme=self.label, start_s=start, delay_s=delay, period_s=period,
                          vehicles=len(members), reporting=len(ids), served=int((allocation.beams >= 0).sum()),
                          apply_sum_rate=apply_rate)
            self.accrue()
            self._cycle = cycle
            if delay < period:
                self._serving = serving
                if self.aging:
                    self._follow_channel()
                else:
                    self._samples, self._rates = None, np.array([apply_rate])
                self._last = env.now
                yield env.timeout(start + period - env.now)
                self.accrue()
            self._serving, self._samples, self._rates = None, None, np.zeros(1)
            self.cycles.append(cycle)
            self._cycle = None
