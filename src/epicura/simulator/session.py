"""The step runner: cooks a `Program` on an appliance's hardware, one step after another, and
emits the session events of `mqtt-topics.md` (`up/session`) with an increasing `seq`.

A step goes through up to three phases: `confirm` (the cook must confirm: `await_user`, `manual`
and steps that start `on_user_confirm`; the simulated cook answers after a few seconds),
`warmup` (a step that starts `on_temperature` waits for the bowl to reach its temperature) and
`work` (timed steps count their duration; a weigh step waits for the poured weight).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from epicura.simulator.physics import Motor, Scale, Thermal
from epicura.simulator.program import Program, SimStep

TERMINAL = frozenset({"completed", "aborted", "failed"})
ACK_DELAY_S = (4.0, 12.0)
RESUME_DELAY_S = (8.0, 25.0)
WARM_ENOUGH_K = 1.0
POUR_RATE_G_S = (25.0, 70.0)
MOTION = frozenset({"stir", "blend", "knead"})
LID_OPEN_ACTIONS = frozenset({"weigh", "await_user", "manual"})


class Hardware(Protocol):
    """What the runner drives: the appliance's actuators and sensors."""

    thermal: Thermal
    motor: Motor
    scale: Scale
    lid: str
    interrupted: bool


@dataclass
class SessionEvent:
    type: str
    seq: int
    step_index: int | None = None
    data: dict[str, Any] | None = None


@dataclass
class Summary:
    """Telemetry summary of a session (domain.md: peak and mean bowl temperature, energy)."""

    peak_c: float = 0.0
    temp_sum: float = 0.0
    seconds: float = 0.0
    energy_j: float = 0.0

    def add(self, bowl_c: float, heater_w: float, dt: float) -> None:
        self.peak_c = max(self.peak_c, bowl_c)
        self.temp_sum += bowl_c * dt
        self.seconds += dt
        self.energy_j += heater_w * dt

    def as_data(self) -> dict[str, Any]:
        mean = self.temp_sum / self.seconds if self.seconds else 0.0
        return {"peak_temp_c": round(self.peak_c, 1), "mean_temp_c": round(mean, 1),
                "energy_wh": round(self.energy_j / 3600, 1), "duration_s": round(self.seconds)}


@dataclass
class SessionRunner:
    program: Program
    session_id: str
    hw: Hardware
    rng: random.Random
    state: str = "planned"
    step_index: int = -1
    phase: str = ""
    timer_s: float = 0.0
    seq: int = 0
    events: list[SessionEvent] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    _resume_in_s: float | None = None
    _paused_from: str = "running"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.state = "running"
        self._emit("started", data={"title": self.program.title,
                                    "steps": len(self.program.steps)})
        self._begin(0)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def step(self) -> SimStep | None:
        steps = self.program.steps
        return steps[self.step_index] if 0 <= self.step_index < len(steps) else None

    def pause(self, reason: str, auto_resume: bool = True) -> bool:
        if self.state not in ("running", "awaiting_user"):
            return False
        self._paused_from, self.state = self.state, "paused"
        self._idle_hardware()
        self._emit("paused", self.step_index, {"reason": reason})
        self._resume_in_s = self.rng.uniform(*RESUME_DELAY_S) if auto_resume else None
        return True

    def resume(self) -> bool:
        if self.state != "paused":
            return False
        self.state, self._resume_in_s = self._paused_from, None
        self._emit("resumed", self.step_index)
        if self.step is not None:
            self._apply(self.step)
        return True

    def abort(self, reason: str) -> bool:
        if self.finished:
            return False
        self._finish("aborted", {"reason": reason})
        return True

    def fail(self, reason: str) -> None:
        if not self.finished:
            self._finish("failed", {"reason": reason})

    def reapply(self) -> None:
        """Set the current step's heater, blades and lid again (after an interruption)."""
        if self.state in ("running", "awaiting_user") and self.step is not None:
            self._apply(self.step)

    # --- time ------------------------------------------------------------------------------
    def tick(self, dt: float) -> None:
        """Advance the session by `dt` simulated seconds (the hardware was stepped already)."""
        if self.finished or self.state == "planned":
            return
        self.summary.add(self.hw.thermal.bowl_c, self.hw.thermal.heater_w, dt)
        if self.state == "paused":
            self._tick_paused(dt)
            return
        step = self.step
        if step is None or self.hw.interrupted:
            return  # an open lid holds the step where it is
        if self.phase == "confirm":
            self._tick_confirm(step, dt)
        elif self.phase == "warmup":
            self._tick_warmup(step)
        else:
            self._tick_work(step, dt)

    def _tick_paused(self, dt: float) -> None:
        if self._resume_in_s is None:
            return
        self._resume_in_s -= dt
        if self._resume_in_s <= 0:
            self.resume()

    def _tick_confirm(self, step: SimStep, dt: float) -> None:
        self.timer_s -= dt
        if self.timer_s > 0 or self.hw.scale.pouring:
            return
        self.state = "running"
        self._emit("user_acknowledged", step.index)
        if step.waits_for_user:
            self._complete(step)
        else:
            self._enter_work_or_warmup(step)

    def _tick_warmup(self, step: SimStep) -> None:
        target = step.temperature_c
        if target is None or self.hw.thermal.sensor_c >= target - WARM_ENOUGH_K:
            self._enter_work(step)

    def _tick_work(self, step: SimStep, dt: float) -> None:
        if step.action == "weigh":
            if not self.hw.scale.pouring:
                self._complete(step, {"weight_g": round(self.hw.scale.contents_g, 1)})
            return
        self.timer_s -= dt
        if self.timer_s <= 0:
            self._complete(step)

    # --- steps -----------------------------------------------------------------------------
    def _begin(self, index: int) -> None:
        if index >= len(self.program.steps):
            self._finish("completed", {})
            return
        self.step_index = index
        step = self.program.steps[index]
        self._emit("step_started", index, {"action": step.action, "title": step.title})
        self._apply(step)
        if step.waits_for_user or step.start == "on_user_confirm":
            self._enter_confirm(step)
        else:
            self._enter_work_or_warmup(step)

    def _enter_confirm(self, step: SimStep) -> None:
        self.phase, self.state = "confirm", "awaiting_user"
        self.timer_s = self.rng.uniform(*ACK_DELAY_S)
        if step.action == "await_user" and step.adds_g > 0:
            self.hw.scale.pour(step.adds_g, step.adds_g / (self.timer_s * 0.7))
        self._emit("awaiting_user", step.index, {"prompt": step.prompt[:200]})

    def _enter_work_or_warmup(self, step: SimStep) -> None:
        if step.start == "on_temperature" and step.temperature_c is not None:
            self.phase = "warmup"
        else:
            self._enter_work(step)

    def _enter_work(self, step: SimStep) -> None:
        self.phase, self.timer_s = "work", step.duration_s
        if step.action == "weigh":
            self.hw.scale.pour(step.target_weight_g, self.rng.uniform(*POUR_RATE_G_S))

    def _complete(self, step: SimStep, data: dict[str, Any] | None = None) -> None:
        self._emit("step_completed", step.index, data)
        self._begin(step.index + 1)

    def _finish(self, kind: str, data: dict[str, Any]) -> None:
        self.state = kind
        self._idle_hardware()
        self.hw.lid = "open"
        self._emit(kind, self.step_index if self.step_index >= 0 else None,
                   {**data, **self.summary.as_data()})

    def _apply(self, step: SimStep) -> None:
        """Set the heater, the blades and the lid for the step."""
        thermal, motor = self.hw.thermal, self.hw.motor
        heats = step.action in ("heat", "steam") or step.action in MOTION
        thermal.target_c = step.temperature_c if heats else None
        if step.action in MOTION or (step.action == "heat" and step.speed > 0):
            motor.set(step.speed, step.direction, kneading=step.action == "knead")
        else:
            motor.stop()
        self.hw.lid = "open" if step.action in LID_OPEN_ACTIONS else "locked"

    def _idle_hardware(self) -> None:
        self.hw.thermal.target_c = None
        self.hw.motor.stop()

    def _emit(self, kind: str, step_index: int | None = None,
              data: dict[str, Any] | None = None) -> None:
        self.seq += 1
        self.events.append(SessionEvent(kind, self.seq, step_index, data or None))
