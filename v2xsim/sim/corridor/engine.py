"""One corridor run: cars, every RSU's beam-alignment loop and the federated rounds on one
SimPy clock, advancing from event to event (no world tick).

Processes (all generators on one :class:`simpy.Environment`):

* **car** (one per car): sleeps until its next coverage crossing (computed exactly from
  its start and speed, :class:`~v2xsim.sim.corridor.road.Corridor`), then updates which
  RSU serves it. Entering a coverage while served by none attaches it; leaving the
  serving RSU's coverage hands it over to another RSU that covers it (logged
  ``handover``) or leaves it unserved (``exit``). A model transfer in progress on the
  link it leaves is broken: that client fails ("left coverage during upload").
* **alignment** (one per RSU): the scheme's cycle as in the single-RSU engine: sweep (W
  beam slots), every served car's feedback message over the RSU's back channel (a SimPy
  resource shared with model uploads), the RSU's computation, then the data phase until
  the realignment time. At each alignment the channels of the served cars are evaluated
  at the end of the sweep (the cars' positions at that instant, every car's body as a
  blocker) and the scheme allocates beams and powers; the per-car rates hold for the
  data phase (frozen channel). With ``alignment.mode = "sampled"`` this evaluation runs
  only at every ``sample_every``-th alignment of each RSU and the effective sum rate is
  the ratio estimate (bits of the evaluated cycles / their length x all cycles' length);
  the events (sweep, feedback messages, computation) are the same in both modes, so the
  FL timeline does not change. Cars record training samples at every ``record_every``-th
  alignment (:mod:`v2xsim.sim.corridor.learning`).
* **federated rounds** (synchronous) or **buffered asynchronous** aggregation
  (FedBuff-style), with one **client** process per selected car: the global model
  reaches the car's RSU over the backhaul (``latency + bytes / rate``), the car downloads
  it over its RSU -> car link (``bytes / downlink rate``; that airtime is taken from the
  car's data phase), trains for its device's compute time, waits until an RSU covers it,
  uploads over that RSU's back channel (queued behind feedback and other uploads, or,
  with ``fl.priority``, pre-empted by every feedback message and resumed), and the result
  crosses the backhaul to the aggregator. A round closes at its deadline, when every
  client has finished or failed, or once ``target`` results are in (over-commitment);
  clients still running then fail ("missed the deadline" / "round closed before its
  result arrived"). Every failure reaches the strategy's ``aggregate_fit``.

Inter-RSU interference is left out: each RSU's data phase sees only its own beams.
Local training runs for real (PyTorch) when a car's compute starts; its simulated
duration comes from the device model, never from the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import simpy
from simpy.resources.resource import Preempted

from v2xsim.fl.base import ClientUpdate, FitFailure, FitInstruction
from v2xsim.geometry import Boxes, RoadLayout, Snapshot, vehicle_boxes
from v2xsim.metrics import gain_matrix, rates_from_gains, rss_vector
from v2xsim.radio import Radio
from v2xsim.schemes.base import Observation, Scheme
from v2xsim.sim.corridor.devices import Device
from v2xsim.sim.corridor.road import ENTER, Corridor
from v2xsim.timing import RealignmentPolicy, TimingModel

#: reasons a client fails
LEFT_COVERAGE = "left coverage during {stage}"
MISSED_DEADLINE = "missed the deadline ({stage})"
ROUND_CLOSED = "round closed before its result arrived ({stage})"


@dataclass
class Fleet:
    """The cars: start positions [m], speeds [m/s], lanes, and their devices."""

    x0: np.ndarray
    speed: np.ndarray
    lane: np.ndarray
    devices: list[Device]

    def __len__(self) -> int:
        return len(self.x0)

    def x_at(self, time_s: float) -> np.ndarray:
        """Road positions (K,) [m] at ``time_s`` (unwrapped: add laps on a loop)."""
        return self.x0 + self.speed * time_s


@dataclass
class RSUSite:
    """One RSU: pole position along the road [m], radio, channel backend, scheme, the seed
    of its per-cycle noise generators and the scheme's generator."""

    x_m: float
    radio: Radio
    channel: Any
    scheme: Scheme
    noise_seed: int
    scheme_rng: np.random.Generator

    def cycle_rng(self, cycle: int, stream: int) -> np.random.Generator:
        """Generator of one alignment's sweep-measurement noise (``stream`` 1) or sensor
        noise (2): per cycle, so the draws do not depend on which cycles are evaluated."""
        return np.random.default_rng([self.noise_seed, cycle, stream])


@dataclass
class RSUAccount:
    """Beam-alignment bookkeeping of one RSU."""

    cycles: int = 0
    evaluated_cycles: int = 0
    cycle_time_s: float = 0.0  # every cycle's length
    evaluated_time_s: float = 0.0
    evaluated_bits: float = 0.0  # [bit/s/Hz x s]
    delay_s: float = 0.0
    feedback_messages: int = 0
    feedback_wait_s: float = 0.0
    feedback_waits_behind_upload: int = 0
    samples_recorded: int = 0

    def delivered(self) -> float:
        """Delivered bits [bit/s/Hz x s]: measured (every cycle evaluated) or the ratio
        estimate from the evaluated cycles."""
        if self.evaluated_time_s <= 0:
            return 0.0
        return self.evaluated_bits * self.cycle_time_s / self.evaluated_time_s


@dataclass
class ClientRun:
    """One client's work in a round (or one asynchronous dispatch)."""

    car: int
    round: int
    instruction: FitInstruction
    base_state: Any
    base_version: int
    dispatch: int
    stage: str = "download"
    process: Any = None
    link_rsu: int | None = None  # RSU whose link carries its transfer now
    update: ClientUpdate | None = None
    resolved: bool = False
    bytes_down: int = 0
    bytes_up: int = 0
    download_s: float = 0.0
    compute_s: float = 0.0
    upload_s: float = 0.0
    upload_wait_s: float = 0.0
    preemptions: int = 0
    download: list[float] | None = None  # [start, end] of the download airtime [s]
    downloaded: int = 0  # bytes received
    started: float = 0.0
    deadline_at: float = math.inf
    rsus: list[int] = field(default_factory=list)


class CorridorEngine:
    """Builds the processes of one run on ``env`` (see the module doc).

    Args:
        env: the environment. corridor, fleet, layout, sites, timing, policy: the world.
        learner: the learning side (:class:`~v2xsim.sim.corridor.learning.Learner`).
        strategy: the FL strategy plug-in (None: no FL traffic at all).
        fl: the ``[fl]`` section. alignment: the ``[alignment]`` section.
        backhaul_latency_s, backhaul_rate_bps: RSU <-> aggregator links.
        flops_per_sample: FLOPs of one training sample, by the car's modalities.
        rng: the aggregator's generator (selection, strategy draws).
        on_round: called after every aggregation with the round's row.
        replay: rounds already done (resume): their selections come from ``replay_log``,
            their local training and aggregation are skipped; ``on_replayed`` is called
            when the last of them closes (to load the checkpoint's state), and ``pending``
            holds the asynchronous dispatches the checkpoint had not aggregated yet.
        recorder: receives every recorded alignment ``(rsu, cars, channels (K, Nt),
            measured RSS (K, W) [W], sensor readings, feedback bits (K, W))`` instead of
            the cars' own data sets (the evaluation survey).
    """

    def __init__(self, *, env: simpy.Environment, corridor: Corridor, fleet: Fleet, layout: RoadLayout,
                 sites: list[RSUSite], timing: TimingModel, policy: RealignmentPolicy, learner: Any,
                 strategy: Any, fl: Any, alignment: Any, backhaul_latency_s: float, backhaul_rate_bps: float,
                 flops_per_sample: Callable[[int], float], rng: np.random.Generator,
                 on_round: Callable[[dict[str, Any]], None] | None = None, replay: int = 0,
                 replay_log: list[list[tuple[int, dict]]] | None = None,
                 on_replayed: Callable[[], None] | None = None,
                 pending: dict[int, dict[str, Any]] | None = None,
                 recorder: Callable[..., None] | None = None) -> None:
        self.env = env
        self.corridor = corridor
        self.fleet = fleet
        self.layout = layout
        self.sites = sites
        self.timing = timing
        self.policy = policy
        self.learner = learner
        self.strategy = strategy
        self.fl = fl
        self.alignment = alignment
        self.backhaul_latency_s = backhaul_latency_s
        self.backhaul_rate_bps = backhaul_rate_bps
        self.flops_per_sample = flops_per_sample
        self.rng = rng
        self.on_round = on_round
        self.replay = replay
        self.replay_log = replay_log or []
        self.on_replayed = on_replayed
        self.recorder = recorder
        self.instructions_log: list[list[tuple[int, dict]]] = []
        n_rsu = corridor.num_rsus
        if fl is not None and fl.priority:
            self.backchannel = [simpy.PreemptiveResource(env, capacity=1) for _ in range(n_rsu)]
        else:
            self.backchannel = [simpy.PriorityResource(env, capacity=1) for _ in range(n_rsu)]
        self.backhaul = [simpy.Resource(env, capacity=1) for _ in range(n_rsu)]
        self.accounts = [RSUAccount() for _ in range(n_rsu)]
        self.events: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []
        # coverage state
        self.covering: list[set[int]] = [set() for _ in range(len(fleet))]
        self.serving: list[int | None] = [None] * len(fleet)
        self.served_by: list[set[int]] = [set() for _ in range(n_rsu)]
        self._entry_waiters: list[list[simpy.Event]] = [[] for _ in range(n_rsu)]
        self._coverage_waiters: list[list[simpy.Event]] = [[] for _ in range(len(fleet))]
        self._any_coverage: list[simpy.Event] = []
        self._serving_log: list[list[tuple[int, float, float]]] = [[] for _ in range(len(fleet))]
        self._serving_since = [0.0] * len(fleet)
        self._downloads: list[list[tuple[float, float]]] = [[] for _ in range(len(fleet))]
        self.transfer: dict[int, ClientRun] = {}
        self.in_flight: dict[int, ClientRun] = {}
        self.version = 0
        self.dispatches = 0
        self.finished = env.event()
        self.pending: dict[int, dict[str, Any]] = dict(pending or {})
        self._buffer: list = []
        self._results: list = []
        self._failures: list = []
        self._on_settle: Callable[[], None] = lambda: None
        self.upload_active = [0] * n_rsu
        #: bytes carried by the backhaul (models to the RSUs, results to the aggregator)
        self.backhaul_bytes = 0
        self._backhaul_reported = 0
        self._open_cycle: list[dict[str, Any] | None] = [None] * n_rsu
        self._upload_spans: list[list[tuple[float, float]]] = [[] for _ in range(n_rsu)]
        for car in range(len(fleet)):
            for j in corridor.covering(float(fleet.x0[car] % corridor.length_m)):
                self.covering[car].add(j)
            if self.covering[car]:
                self._attach(car, min(self.covering[car]), log=False)
                self.log("start", car=car, rsu=self.serving[car])
        for car in range(len(fleet)):
            env.process(self._car(car))
        for j in range(n_rsu):
            env.process(self._alignment(j))
        if strategy is not None:
            env.process(self._rounds() if fl.mode == "sync" else self._buffered())

    # ------------------------------------------------------------------ log
    def log(self, event: str, **fields: Any) -> None:
        self.events.append({"time_s": self.env.now, "event": event, **fields})

    # ------------------------------------------------------------ coverage
    def _attach(self, car: int, rsu: int | None, *, log: bool = True) -> None:
        old = self.serving[car]
        now = self.env.now
        if old is not None:
            self.served_by[old].discard(car)
            self._serving_log[car].append((old, self._serving_since[car], now))
            del self._serving_log[car][:-8]
        self.serving[car] = rsu
        self._serving_since[car] = now
        if rsu is not None:
            self.served_by[rsu].add(car)
            waiting, self._entry_waiters[rsu] = self._entry_waiters[rsu], []
            for event in waiting:
                event.succeed()
            waiting, self._coverage_waiters[car] = self._coverage_waiters[car], []
            for event in waiting:
                event.succeed(rsu)
            self._wake_eligibility()
        run = self.transfer.get(car)
        if run is not None and old is not None and run.link_rsu == old and not run.resolved:
            run.process.interrupt(("left", old))

    def _wake_eligibility(self) -> None:
        """Wake the round processes waiting for a car to become eligible (it entered a
        coverage or recorded a sample)."""
        waiting, self._any_coverage = self._any_coverage, []
        for event in waiting:
            if not event.triggered:
                event.succeed()

    def _car(self, car: int):
        corridor, fleet = self.corridor, self.fleet
        for crossing in corridor.crossings(float(fleet.x0[car] % corridor.length_m), float(fleet.speed[car])):
            yield self.env.timeout(crossing.time_s - self.env.now)
            j = crossing.rsu
            if crossing.kind == ENTER:
                self.covering[car].add(j)
                if self.serving[car] is None:
                    self.log("enter", car=car, rsu=j)
                    self._attach(car, j)
            else:
                self.covering[car].discard(j)
                if self.serving[car] == j:
                    new = min(self.covering[car]) if self.covering[car] else None
                    if new is None:
                        self.log("exit", car=car, rsu=j)
                    else:
                        self.log("handover", car=car, rsu=new, detail=f"from RSU {j}")
                    self._attach(car, new)
        if not corridor.loop:
            self.log("left road", car=car)

    def served_interval(self, car: int, rsu: int, start: float, end: float) -> float:
        """Seconds of ``[start, end]`` in which ``rsu`` served ``car``."""
        total = 0.0
        spans = list(self._serving_log[car])
        if self.serving[car] is not None:
            spans.append((self.serving[car], self._serving_since[car], math.inf))
        for which, since, until in spans:
            if which == rsu:
                total += max(0.0, min(end, until) - max(start, since))
        return total

    def download_overlap(self, car: int, start: float, end: float) -> float:
        """Seconds of ``[start, end]`` the car spent downloading a model."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self._downloads[car])

    def road_x(self, car: int, time_s: float) -> float:
        """Position of ``car`` along the road at ``time_s`` [m] (within one lap on a loop)."""
        x = float(self.fleet.x_at(time_s)[car])
        return x % self.corridor.length_m if self.corridor.loop else x

    def _scene(self, rsu: int, cars: list[int], time_s: float) -> tuple[np.ndarray, Boxes]:
        """Positions (len(cars), 3) of ``cars`` in ``rsu``'s frame and the bodies of every
        car on the road (a car past the end of an open road has left it)."""
        x = self.fleet.x_at(time_s) - self.sites[rsu].x_m
        on_road = np.ones(len(x), dtype=bool)
        if self.corridor.loop:  # the nearest image of each car around the pole
            half = self.corridor.length_m / 2
            x = (x + self.sites[rsu].x_m) % self.corridor.length_m - self.sites[rsu].x_m
            x = (x + half) % self.corridor.length_m - half
        else:
            on_road = self.fleet.x_at(time_s) < self.corridor.length_m
        positions = np.stack([x, self.layout.lane_centres[self.fleet.lane], np.full(len(x), self.layout.antenna_height_m)],
                             axis=1)
        bodies = vehicle_boxes(self.layout, positions[on_road], np.flatnonzero(on_road))
        return positions[cars], bodies

    # ------------------------------------------------------------ alignment
    def _alignment(self, j: int):
        env, site, account = self.env, self.sites[j], self.accounts[j]
        radio = site.radio
        scheme = site.scheme
        while True:
            if not self.served_by[j]:
                wake = env.event()
                self._entry_waiters[j].append(wake)
                yield wake
                continue
            start = env.now
            account.cycles += 1
            members = sorted(self.served_by[j])
            period = self.policy.period(self.fleet.speed[members], coverage_length_m=self.layout.coverage_length,
                                        num_beams=radio.num_beams)
            evaluate = self.alignment.mode == "full" or (account.cycles - 1) % self.alignment.sample_every == 0
            # an alignment in progress when the window closes: a cycle without data
            self._open_cycle[j] = {"start": start, "cars": [], "rates": None, "evaluate": evaluate,
                                   "data_end": start}
            if scheme.acquisition == "sweep":
                yield env.timeout(self.timing.sweep_time(radio.num_beams))
            cars = [c for c in members if self.serving[c] == j]
            record = (account.cycles - 1) % self.alignment.record_every == 0
            rates = None
            if cars and (evaluate or record):
                rates = self._measure(j, cars, evaluate=evaluate, record=record, cycle=account.cycles)
            bits = scheme.feedback_bits(radio.num_beams)
            if bits > 0 and cars:
                yield env.all_of([env.process(self._feedback(j, car, bits)) for car in cars])
            compute = self.alignment.compute_ms * 1e-3
            if compute > 0:
                yield env.timeout(compute)
            delay = env.now - start
            account.delay_s += delay
            cycle = {"start": start, "data_start": env.now, "data_end": start + period, "cars": cars,
                     "rates": rates, "evaluate": evaluate}
            self._open_cycle[j] = cycle
            if cycle["data_end"] > env.now:
                yield env.timeout(cycle["data_end"] - env.now)
            self._close_cycle(j, until=max(cycle["data_end"], env.now))

    def _close_cycle(self, j: int, *, until: float) -> None:
        """Account RSU ``j``'s cycle in progress up to ``until`` [s]: its length, and with
        rates, the bits each car received while served (downloads taken out)."""
        cycle, account = self._open_cycle[j], self.accounts[j]
        if cycle is None:
            return
        self._open_cycle[j] = None
        length = until - cycle["start"]
        account.cycle_time_s += length
        if not cycle["evaluate"]:
            return
        account.evaluated_cycles += 1
        account.evaluated_time_s += length
        data_start = cycle.get("data_start")
        if cycle["rates"] is None or data_start is None:
            return
        data_end = min(until, cycle["data_end"])
        if data_end > data_start:
            for car, rate in zip(cycle["cars"], cycle["rates"]):
                served = self.served_interval(car, j, data_start, data_end)
                served -= self.download_overlap(car, data_start, data_end)
                account.evaluated_bits += float(rate) * max(0.0, served)

    def finish(self) -> None:
        """Close the measurement window now: cycles in progress count up to now (an
        alignment still running counts as a cycle without data)."""
        for j in range(len(self.sites)):
            self._close_cycle(j, until=self.env.now)

    def _measure(self, j: int, cars: list[int], *, evaluate: bool, record: bool, cycle: int) -> np.ndarray | None:
        """Channels of ``cars`` now: record their samples and (``evaluate``) allocate;
        returns the per-car rates [bit/s/Hz] of the allocation."""
        site, radio = self.sites[j], self.sites[j].radio
        now = self.env.now
        positions, bodies = self._scene(j, cars, now)
        ids = np.asarray(cars)
        h = site.channel.channels(positions, bodies, ids)
        measured = radio.measure(rss_vector(h, radio.codebook, radio.p_max), site.cycle_rng(cycle, 1))
        # without FL (and no survey) nobody learns from the samples
        if record and (self.strategy is not None or self.recorder is not None):
            from v2xsim.sensing import sense

            scheme_sensors = getattr(site.scheme, "sensor_config", None)
            readings = sense(self.layout, Snapshot(ids=ids, positions=positions, obstacles=bodies),
                             site.cycle_rng(cycle, 2), config=scheme_sensors)
            feedback = measured > radio.feedback_threshold
            if self.recorder is not None:
                self.recorder(j, cars, h, measured, readings, feedback)
            else:
                for row, car in enumerate(cars):
                    self.learner.data[car].add(gps=readings["gps"][row], image=readings["image"][row],
                                               lidar=readings["lidar"][row], rss=measured[row] * 1e3,
                                               feedback=feedback[row])
            self.accounts[j].samples_recorded += len(cars)
            self._wake_eligibility()
        if not evaluate:
            return None
        scheme = site.scheme
        observation = Observation(codebook=radio.codebook if scheme.needs_csi else radio.model_codebook,
                                  p_max=radio.p_max, noise_power=radio.noise_power,
                                  feedback_threshold=radio.feedback_threshold,
                                  channels=h if scheme.needs_csi else None,
                                  rss=measured if scheme.acquisition == "sweep" else None, feedback=None,
                                  rng=site.scheme_rng)
        allocation = scheme.allocate(observation)
        precoders = allocation.precoders(radio.codebook)
        if precoders.shape[1] == 0:
            return np.zeros(len(cars))
        gains = gain_matrix(h, precoders)
        return rates_from_gains(gains, radio.noise_power, columns=np.arange(len(cars)))

    def _feedback(self, j: int, car: int, bits: int):
        asked = self.env.now
        if self.fl is not None and self.fl.priority:
            request = self.backchannel[j].request(priority=0, preempt=True)
        else:
            request = self.backchannel[j].request(priority=0)
        with request:
            yield request
            account = self.accounts[j]
            account.feedback_messages += 1
            account.feedback_wait_s += self.env.now - asked
            # the channel was busy with an upload for part of the wait
            if any(min(self.env.now, end) > max(asked, began) for began, end in self._upload_spans[j]):
                account.feedback_waits_behind_upload += 1
            yield self.env.timeout(self.timing.airtime(bits))

    # ------------------------------------------------------------ clients
    def eligible(self) -> list[int]:
        """Cars in coverage with enough samples and no work in flight."""
        return [car for car in range(len(self.fleet)) if self.serving[car] is not None and car not in self.in_flight
                and self.learner.num_samples(car) >= self.fl.min_samples]

    def select(self, candidates: list[int], *, shuffle: bool = False) -> list[int]:
        """The cars offered to the strategy, by ``fl.selection``, in order of preference
        (``shuffle``: a random order for ``all``, asynchronous mode, where only as many as
        there are free slots go)."""
        fl = self.fl
        if fl.selection == "all":
            ranked = [int(c) for c in self.rng.permutation(candidates)] if shuffle else list(candidates)
            size = len(candidates)
        elif fl.selection == "fraction":
            ranked = [int(c) for c in self.rng.permutation(candidates)]
            size = max(1, math.ceil(fl.fraction * len(candidates)))
        else:  # over-commitment by expected time left in coverage
            now = self.env.now
            left = {c: self.corridor.time_left_s(self.road_x(c, now), float(self.fleet.speed[c]), self.serving[c])
                    for c in candidates}
            ranked = sorted(candidates, key=lambda c: (-left[c], c))
            size = math.ceil(fl.target * (1.0 + fl.overcommit))
        return ranked[:size]

    def _choose(self, number: int, count: int | None = None) -> list[FitInstruction]:
        """Select cars among the eligible and let the strategy configure them; recorded,
        and on resume replayed from the log (so the replayed rounds select the same cars
        without drawing from the generator, whose state the checkpoint restores)."""
        call = len(self.instructions_log)
        if call < len(self.replay_log):
            instructions = [FitInstruction(client, dict(config)) for client, config in self.replay_log[call]]
        else:
            # the strategy sees every offered car (a Flower strategy's minimum counts them
            # all); with ``count`` free slots (asynchronous mode) the most preferred go
            cars = self.select(self.eligible(), shuffle=count is not None)
            instructions = self.strategy.configure_fit(number, [self.learner.info(c) for c in sorted(cars)],
                                                       self.rng)
            if count is not None:
                preference = {car: index for index, car in enumerate(cars)}
                kept = sorted(instructions, key=lambda i: preference.get(i.client, len(preference)))[:count]
                instructions = sorted(kept, key=lambda i: i.client)
        self.instructions_log.append([(i.client, dict(i.config)) for i in instructions])
        return instructions

    def _until_eligibility_changes(self, *, from_set: list[int]):
        """Process fragment: wait until the eligible cars differ from ``from_set``."""
        while self.eligible() == from_set:
            wake = self.env.event()
            self._any_coverage.append(wake)
            yield wake

    def _backhaul(self, j: int, nbytes: int):
        """Process: ``nbytes`` over RSU ``j``'s backhaul (queued), then its latency."""
        with self.backhaul[j].request() as request:
            yield request
            yield self.env.timeout(8 * nbytes / self.backhaul_rate_bps)
        self.backhaul_bytes += nbytes
        if self.backhaul_latency_s > 0:
            yield self.env.timeout(self.backhaul_latency_s)

    def _client(self, run: ClientRun, model_at: dict[int, simpy.Event], replaying: bool):
        env, learner, car = self.env, self.learner, run.car
        try:
            # the global model reaches the RSU the car is under, then the car
            while True:
                j = self.serving[car]
                if j is None:
                    run.stage = "waiting for coverage"
                    wake = env.event()
                    self._coverage_waiters[car].append(wake)
                    yield wake
                    continue
                if j not in model_at:  # the whole global model, once per RSU and dispatch
                    model_at[j] = env.process(self._backhaul(j, learner.model_bytes()))
                run.stage = "backhaul"
                yield model_at[j]
                if self.serving[car] == j:
                    break
            run.stage = "download"
            run.link_rsu = j
            run.rsus.append(j)
            self.transfer[car] = run
            began = env.now
            airtime = 8 * run.bytes_down / (self.fl.downlink_rate_gbps * 1e9)
            self.log("download", car=car, rsu=j, round=run.round, detail=f"{run.bytes_down} B")
            # the car receives no data while it downloads (cut short if the link breaks)
            run.download = [began, began + airtime]
            self._downloads[car].append(run.download)
            del self._downloads[car][:-8]
            yield env.timeout(airtime)
            run.download_s = env.now - began
            run.downloaded = run.bytes_down
            run.link_rsu = None
            self.transfer.pop(car, None)
            # local training: for real now, for the device's time in simulated time
            run.stage = "compute"
            samples = learner.num_samples(car)
            if not replaying:
                run.update = learner.fit(car, run.base_state, run.instruction.config)
            run.compute_s = self.fleet.devices[car].training_time_s(
                flops_per_sample=self.flops_per_sample(car), samples=samples, epochs=self.fl.local_epochs)
            self.log("compute", car=car, round=run.round, detail=f"{samples} samples, {run.compute_s:.6f} s")
            yield env.timeout(run.compute_s)
            # upload from the RSU the car is under (wait for one)
            while self.serving[car] is None:
                run.stage = "waiting for coverage"
                wake = env.event()
                self._coverage_waiters[car].append(wake)
                yield wake
            j = self.serving[car]
            run.stage = "upload"
            run.link_rsu = j
            run.rsus.append(j)
            self.transfer[car] = run
            remaining = self.timing.airtime(8 * run.bytes_up)
            asked = env.now
            self.log("upload request", car=car, rsu=j, round=run.round, detail=f"{run.bytes_up} B")
            while remaining > 0:
                priority = 1 if self.fl.priority else 0
                request = self.backchannel[j].request(priority=priority)
                with request:
                    yield request
                    run.upload_wait_s += env.now - asked
                    began = env.now
                    self.upload_active[j] += 1
                    try:
                        yield env.timeout(remaining)
                        remaining = 0.0
                    except simpy.Interrupt as interrupt:
                        if not isinstance(interrupt.cause, Preempted):
                            raise
                        remaining -= env.now - began
                        run.preemptions += 1
                        asked = env.now
                    finally:
                        self.upload_active[j] -= 1
                        run.upload_s += env.now - began
                        self._upload_spans[j].append((began, env.now))
                        del self._upload_spans[j][:-16]
            self.log("uploaded", car=car, rsu=j, round=run.round)
            run.link_rsu = None
            self.transfer.pop(car, None)
            run.stage = "backhaul"
            yield env.process(self._backhaul(j, run.bytes_up))
            run.stage = "delivered"
            self.log("result", car=car, rsu=j, round=run.round)
            self._deliver(run)
        except simpy.Interrupt as interrupt:
            self._cut_download(run)  # the link broke (or the round closed)
            if run.resolved:
                return
            cause = interrupt.cause
            if isinstance(cause, tuple) and cause[0] == "left":
                self._fail(run, LEFT_COVERAGE.format(stage=run.stage))
            else:
                raise
        finally:
            if self.transfer.get(car) is run:
                self.transfer.pop(car, None)

    # results and failures go to the lists of the round (or buffer) in progress
    def _cut_download(self, run: ClientRun) -> None:
        """A download still in progress ends now (its link broke or its round closed): the
        car's data time is lost only until now, and the bytes received so far count."""
        if run.stage == "download" and run.download is not None and run.download[1] > self.env.now:
            run.download[1] = self.env.now
            run.download_s = self.env.now - run.download[0]
            run.downloaded = min(run.bytes_down, round(run.download_s * self.fl.downlink_rate_gbps * 1e9 / 8))

    def _deliver(self, run: ClientRun) -> None:
        run.resolved = True
        self.in_flight.pop(run.car, None)
        self._results.append((run, run.update))
        self._on_settle()

    def _fail(self, run: ClientRun, reason: str) -> None:
        run.resolved = True
        self.in_flight.pop(run.car, None)
        self._failures.append((run, FitFailure(client=run.car, reason=reason)))
        self.log("failure", car=run.car, round=run.round, detail=reason)
        self._on_settle()

    def _start(self, run: ClientRun, model_at: dict[int, simpy.Event], replaying: bool) -> None:
        learner = self.learner
        run.bytes_down = learner.bytes_down(run.car, run.instruction.config, run.base_state)
        run.bytes_up = learner.bytes_up(run.car, run.instruction.config)
        self.in_flight[run.car] = run
        self.log("selected", car=run.car, rsu=self.serving[run.car], round=run.round)
        run.process = self.env.process(self._client(run, model_at, replaying))

    # ------------------------------------------------------------ synchronous rounds
    def _rounds(self):
        env, fl = self.env, self.fl
        for number in range(1, fl.rounds + 1):
            replaying = number <= self.replay
            opened = env.now
            self.log("round open", round=number)
            while True:
                yield from self._until_eligibility_changes(from_set=[])
                instructions = self._choose(number)
                if instructions:
                    break
                # nobody selected (e.g. fewer cars than a Flower strategy's minimum): the
                # round stays open until the eligible cars change
                yield from self._until_eligibility_changes(from_set=self.eligible())
            deadline = env.now + fl.deadline_s
            results: list[tuple[ClientRun, ClientUpdate | None]] = []
            failures: list[tuple[ClientRun, FitFailure]] = []
            self._results, self._failures = results, failures
            runs: list[ClientRun] = []
            done = env.event()
            target = fl.target if fl.selection == "overcommit" else None

            def settle() -> None:
                if done.triggered:
                    return
                if len(results) + len(failures) == len(runs) or (target is not None and len(results) >= target):
                    done.succeed()

            self._on_settle = settle
            model_at: dict[int, simpy.Event] = {}
            for instruction in instructions:
                self.dispatches += 1
                run = ClientRun(car=instruction.client, round=number, instruction=instruction,
                                base_state=self.learner.global_state, base_version=self.version,
                                dispatch=self.dispatches, started=env.now, deadline_at=deadline)
                runs.append(run)
                self._start(run, model_at, replaying)
            if not runs:
                done.succeed()
            yield done | env.timeout(max(0.0, deadline - env.now))
            for run in runs:
                if not run.resolved:
                    reason = (MISSED_DEADLINE if env.now >= deadline else ROUND_CLOSED).format(stage=run.stage)
                    self._cut_download(run)
                    self._fail(run, reason)
                    run.process.interrupt(("closed", number))
            closed = env.now
            self.log("round close", round=number, detail=f"{len(results)} results, {len(failures)} failures")
            rejected = False
            if not replaying:
                updates = [u for _, u in results]
                aggregated = self.strategy.aggregate_fit(number, updates, [f for _, f in failures],
                                                         self.learner.global_state)
                rejected = aggregated is None
                if not rejected:
                    self.learner.global_state = {k: v.clone() for k, v in aggregated.items()}
            self.version += 1
            row = self._row(number, opened, closed, deadline, runs, results, failures, rejected)
            self._record_round(number, row, replaying)
            if fl.gap_s > 0:
                yield env.timeout(fl.gap_s)
        self.finished.succeed()

    # ------------------------------------------------------------ asynchronous (FedBuff)
    def _buffered(self):
        env, fl = self.env, self.fl
        buffer: list[tuple[ClientRun, ClientUpdate | None]] = self._buffer
        failures: list[tuple[ClientRun, FitFailure]] = []
        wake_dispatcher = [env.event()]
        opened = [env.now]
        aggregations = [0]

        def poke() -> None:
            if not wake_dispatcher[0].triggered:
                wake_dispatcher[0].succeed()

        self._results, self._failures, self._on_settle = buffer, failures, poke
        declined: list[int] | None = None
        while aggregations[0] < fl.rounds:
            number = aggregations[0] + 1
            replaying = number <= self.replay
            # deadlines: a client running longer than deadline_s fails
            for run in list(self.in_flight.values()):
                if not run.resolved and env.now >= run.deadline_at:
                    self._cut_download(run)
                    self._fail(run, MISSED_DEADLINE.format(stage=run.stage))
                    run.process.interrupt(("closed", number))
            if len(buffer) >= fl.buffer_size:
                taken, buffer[:] = buffer[:fl.buffer_size], buffer[fl.buffer_size:]
                failed, failures[:] = list(failures), []
                rejected = False
                if not replaying:
                    current = self.learner.global_state
                    scaled = [self._stale_scaled(run, update, current) for run, update in taken]
                    aggregated = self.strategy.aggregate_fit(number, scaled, [f for _, f in failed], current)
                    rejected = aggregated is None
                    if not rejected:
                        self.learner.global_state = {k: v.clone() for k, v in aggregated.items()}
                self.version += 1
                aggregations[0] += 1
                row = self._row(number, opened[0], env.now, None, [r for r, _ in taken] + [r for r, _ in failed],
                                taken, failed, rejected)
                row["staleness_mean"] = float(np.mean([number - 1 - r.base_version for r, _ in taken]))
                opened[0] = env.now
                self.log("aggregate", round=number, detail=f"{len(taken)} results, {len(failed)} failures")
                self._record_round(number, row, replaying)
                continue
            # keep `concurrency` cars working
            free = fl.concurrency - len(self.in_flight)
            candidates = self.eligible()
            if free > 0 and candidates and candidates != declined:
                model_at: dict[int, simpy.Event] = {}
                instructions = self._choose(number, count=free)
                # nobody selected: ask again only when the eligible cars change
                declined = candidates if not instructions else None
                for instruction in instructions:
                    self.dispatches += 1
                    run = ClientRun(car=instruction.client, round=number, instruction=instruction,
                                    base_state=self.learner.global_state, base_version=self.version,
                                    dispatch=self.dispatches, started=env.now,
                                    deadline_at=env.now + fl.deadline_s)
                    skip = replaying
                    saved = self.pending.get(run.dispatch)
                    if saved is not None:  # in flight or buffered at the checkpoint
                        run.base_state, run.update = saved["base_state"], saved["update"]
                        skip = saved["update"] is not None
                    self._start(run, model_at, skip)
                if instructions:
                    continue
            wake_dispatcher[0] = env.event()
            waits = [wake_dispatcher[0]]
            if free > 0:
                coverage = env.event()
                self._any_coverage.append(coverage)
                waits.append(coverage)
            pending = [r for r in self.in_flight.values() if not r.resolved]
            if pending:
                first = min(r.deadline_at for r in pending)
                waits.append(env.timeout(max(0.0, first - env.now)))
            yield env.any_of(waits)
        self.finished.succeed()

    def pending_state(self) -> dict[int, dict[str, Any]]:
        """Asynchronous mode: the dispatches whose results are not aggregated yet (in
        flight or buffered), with their base model and their result when trained: what a
        checkpoint must keep for a resumed run to aggregate them."""
        runs = [r for r in self.in_flight.values() if not r.resolved] + [r for r, _ in self._buffer]
        return {r.dispatch: {"base_state": r.base_state, "update": r.update} for r in runs}

    def _stale_scaled(self, run: ClientRun, update: ClientUpdate, current) -> ClientUpdate:
        """The update as ``current + s (local - base)`` with the staleness weight
        ``s = (1 + staleness)^-exponent`` (FedBuff); entries it did not upload stay out."""
        staleness = self.version - run.base_version
        weight = (1.0 + staleness) ** -self.fl.staleness_exponent
        state = {k: current[k] + weight * (v - run.base_state[k]) if v.is_floating_point() else v
                 for k, v in update.state.items()}
        return ClientUpdate(client=update.client, state=state, num_samples=update.num_samples,
                            metrics=dict(update.metrics))

    def _record_round(self, number: int, row: dict[str, Any], replaying: bool) -> None:
        """After aggregation ``number``: a replayed round only tells the resume when the
        last one closed; a live one is evaluated (every ``evaluate_every``), logged and
        reported (``on_round``: the checkpoint)."""
        if replaying:
            if number == self.replay and self.on_replayed is not None:
                self.on_replayed()
            return
        if number % self.fl.evaluate_every == 0 or number == self.fl.rounds:
            row.update(self.learner.evaluate())
        self.rounds.append(row)
        if self.on_round is not None:
            self.on_round(row)

    # ------------------------------------------------------------ per-round row
    def _row(self, number: int, opened: float, closed: float, deadline: float | None, runs: list[ClientRun],
             results: list, failures: list, rejected: bool) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _, failure in failures:
            key = failure.reason.split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        delivered = [r for r, _ in results]
        involved = list(runs)
        return {
            "round": number, "open_s": opened, "close_s": closed,
            "deadline_s": deadline if deadline is not None else "",
            "selected": len(involved), "completed": len(results), "failed": len(failures),
            "failure_reasons": "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())),
            "rejected": int(rejected),
            "bytes_down": int(sum(r.downloaded for r in involved)),
            "bytes_up": int(sum(r.bytes_up for r in delivered)),
            "airtime_down_s": float(sum(r.download_s for r in involved)),
            "airtime_up_s": float(sum(r.upload_s for r in involved)),
            "upload_wait_s": float(sum(r.upload_wait_s for r in involved)),
            "compute_s": float(sum(r.compute_s for r in involved)),
            "preemptions": int(sum(r.preemptions for r in involved)),
            "samples": int(sum(r.update.num_samples for r in delivered if r.update is not None)),
            "bytes_backhaul": self._backhaul_since_last_row(),
        }

    def _backhaul_since_last_row(self) -> int:
        carried, self._backhaul_reported = self.backhaul_bytes - self._backhaul_reported, self.backhaul_bytes
        return int(carried)


__all__ = ["CorridorEngine", "Fleet", "RSUAccount", "RSUSite", "LEFT_COVERAGE", "MISSED_DEADLINE", "ROUND_CLOSED"]
