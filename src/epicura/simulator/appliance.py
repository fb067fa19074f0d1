"""One appliance's model: hardware, the current cooking session, the lid and its alerts.

Pure: it has no clock and no I/O. `tick(dt)` advances it by `dt` simulated seconds and returns the
sample the sensors read; session events and alerts pile up in `outbox` as `(kind, body)` pairs
for the driver to wrap in an envelope and send (`kind` is the `up/` topic: `session`, `alert`).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from epicura.simulator.physics import Motor, Scale, Thermal
from epicura.simulator.program import Program
from epicura.simulator.session import MOTION, SessionRunner

LID_ALERT = "lid_open_while_running"
LID_CLOSED_AFTER_S = (3.0, 8.0)
SERVE_AFTER_S = 20.0


@dataclass
class ActiveAlert:
    alert_id: str
    code: str
    clears_in_s: float
    session_id: str | None
    data: dict[str, Any]


@dataclass
class ApplianceModel:
    rng: random.Random
    # Chance per simulated second, during a step that turns the blades, that the cook opens the
    # lid (the blades stop, an alert is raised, then cleared when the lid is closed again).
    lid_alert_per_s: float = 1 / 1800
    thermal: Thermal = field(default_factory=Thermal)
    motor: Motor = field(default_factory=Motor)
    scale: Scale = field(default_factory=Scale)
    lid: str = "locked"
    interrupted: bool = False
    session: SessionRunner | None = None
    alert: ActiveAlert | None = None
    outbox: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _idle_s: float = 0.0

    # --- sessions --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.session is not None and not self.session.finished

    @property
    def session_id(self) -> str | None:
        return self.session.session_id if self.busy and self.session else None

    def start_session(self, program: Program, session_id: str | None = None) -> SessionRunner:
        if self.busy:
            raise RuntimeError("a session is already running")
        # Ids are never drawn from the seeded generator: a rerun with the same seed must not
        # reuse a session or alert id the service already holds.
        runner = SessionRunner(program, session_id or str(uuid.uuid4()), self, self.rng)
        self.session = runner
        runner.start()
        self._drain_session()
        return runner

    def pause(self, reason: str) -> bool:
        done = self.session is not None and self.session.pause(reason)
        self._drain_session()
        return done

    def abort(self, reason: str) -> bool:
        done = self.session is not None and self.session.abort(reason)
        self._drain_session()
        return done

    def wipe(self) -> None:
        """Unpair: end what runs and forget the user's data (the driver clears its library)."""
        self.abort("unpaired")
        self.session = None

    # --- time ------------------------------------------------------------------------------
    def tick(self, dt: float) -> dict[str, Any]:
        """Advance `dt` simulated seconds; returns the sample (without its time `t`)."""
        # The controller decides first, then the hardware runs the second with those settings,
        # so a sample's settings and readings agree.
        if self.session is not None:
            self.session.tick(dt)
            self._drain_session()
        self._tick_alert(dt)
        self._maybe_open_lid()
        self._tick_idle(dt)
        self.thermal.lid_open = self.lid == "open"
        self.thermal.contents_g = self.scale.contents_g
        self.thermal.step(dt)
        self.motor.step(dt, self.rng)
        self.scale.step(dt, self.rng)
        return self.sample()

    def sample(self) -> dict[str, Any]:
        return {
            "bowl_temp_c": round(self.thermal.sensor_c + self.rng.gauss(0, 0.15), 1),
            "target_temp_c": self.thermal.target_c,
            "speed": self.motor.speed,
            "direction": self.motor.direction,
            "weight_g": self.scale.reading(self.rng, self.motor.rpm),
            "heater_w": round(self.thermal.heater_w),
            "motor_rpm": round(self.motor.rpm),
            "lid": self.lid,
        }

    def _drain_session(self) -> None:
        runner = self.session
        if runner is None:
            return
        for event in runner.events:
            body: dict[str, Any] = {"session_id": runner.session_id, "seq": event.seq,
                                    "type": event.type}
            if event.type == "started":
                program = runner.program
                body |= {k: v for k, v in (("recipe_id", program.recipe_id),
                                           ("recipe_version", program.recipe_version),
                                           ("servings", program.servings)) if v is not None}
            if event.step_index is not None:
                body["step_index"] = event.step_index
            if event.data:
                body["data"] = event.data
            self.outbox.append(("session", body))
        runner.events.clear()

    def _maybe_open_lid(self) -> None:
        runner = self.session
        step = runner.step if runner is not None and runner.state == "running" else None
        if (self.alert is not None or step is None or step.action not in MOTION
                or self.rng.random() >= self.lid_alert_per_s):
            return
        self.lid, self.interrupted = "open", True
        self.motor.stop()
        self.alert = ActiveAlert(
            alert_id=uuid.uuid4().hex,
            code=LID_ALERT, clears_in_s=self.rng.uniform(*LID_CLOSED_AFTER_S),
            session_id=self.session_id, data={"step_index": step.index},
        )
        self._send_alert("raised")

    def _tick_alert(self, dt: float) -> None:
        alert = self.alert
        if alert is None:
            return
        alert.clears_in_s -= dt
        if alert.clears_in_s > 0:
            return
        self.lid, self.interrupted = "locked", False
        if self.session is not None and self.busy:
            self.session.reapply()
        self._send_alert("cleared")
        self.alert = None

    def _send_alert(self, state: str) -> None:
        alert = self.alert
        assert alert is not None
        body: dict[str, Any] = {"alert_id": alert.alert_id, "code": alert.code,
                                "severity": "warning", "state": state, "data": alert.data}
        if alert.session_id is not None:
            body["session_id"] = alert.session_id
        self.outbox.append(("alert", body))

    def _tick_idle(self, dt: float) -> None:
        """After a session the cook serves: the bowl is emptied and the lid closed again."""
        if self.busy or (self.scale.contents_g <= 0 and self.lid == "locked"):
            self._idle_s = 0.0
            return
        self._idle_s += dt
        if self._idle_s >= SERVE_AFTER_S:
            self.scale.contents_g, self.scale.pouring_to_g = 0.0, None
            self.lid, self._idle_s = "locked", 0.0
