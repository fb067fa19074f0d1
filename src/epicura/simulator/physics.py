"""Physics of one appliance: the bowl's temperature, the motor and the scale. Pure and
deterministic given its random generator; time only advances through `step(dt_s)`.

The thermal model has two nodes: the heating element (small heat capacity) and the bowl with its
contents (large, growing with what the cook adds). The controller reads the bowl's sensor, so
the heat still stored in the element and the lag of the probe under the bowl give a small,
realistic overshoot when it backs off; with
the heater off the bowl cools towards the room (Newton's law).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

AMBIENT_C = 22.0
HEATER_MAX_W = 1000.0
HEATER_CAPACITY_J_PER_K = 400.0  # element and plate
BOWL_CAPACITY_J_PER_K = 1800.0  # empty steel bowl
CONTENTS_J_PER_G_K = 3.6  # food is mostly water
HEATER_TO_BOWL_W_PER_K = 60.0
LOSS_LID_LOCKED_W_PER_K = 3.5
LOSS_LID_OPEN_W_PER_K = 6.0
CONTROL_GAIN_W_PER_K = 250.0
SENSOR_LAG_S = 12.0  # the probe under the bowl trails the food
MAX_SUBSTEP_S = 0.5

# Blade speed setting (0-10, fractions allowed) → revolutions per minute, interpolated.
RPM_BY_SPEED = (0, 100, 250, 500, 1100, 1600, 2200, 3000, 3700, 4400, 10700)
KNEAD_RPM = 220.0


def rpm_for_speed(speed: float) -> float:
    """The motor speed a setting asks for; settings above 10 run at the top speed."""
    if speed <= 0:
        return 0.0
    if speed >= len(RPM_BY_SPEED) - 1:
        return float(RPM_BY_SPEED[-1])
    low = int(speed)
    fraction = speed - low
    return RPM_BY_SPEED[low] + fraction * (RPM_BY_SPEED[low + 1] - RPM_BY_SPEED[low])


@dataclass
class Thermal:
    """Bowl and element temperatures (°C); `target_c` None means the heater is off."""

    bowl_c: float = AMBIENT_C
    heater_c: float = AMBIENT_C
    sensor_c: float = AMBIENT_C
    contents_g: float = 0.0
    target_c: float | None = None
    lid_open: bool = False
    heater_w: float = 0.0
    energy_j: float = 0.0

    @property
    def capacity_j_per_k(self) -> float:
        return BOWL_CAPACITY_J_PER_K + CONTENTS_J_PER_G_K * max(self.contents_g, 0.0)

    def step(self, dt_s: float) -> None:
        """Advance `dt_s` seconds in sub-steps short enough for explicit integration."""
        remaining = dt_s
        while remaining > 1e-9:
            dt = min(remaining, MAX_SUBSTEP_S)
            self._integrate(dt)
            remaining -= dt

    def _power(self) -> float:
        """Feed-forward for the losses at the target plus a proportional term on the error."""
        if self.target_c is None:
            return 0.0
        hold = LOSS_LID_LOCKED_W_PER_K * (self.target_c - AMBIENT_C)
        power = hold + CONTROL_GAIN_W_PER_K * (self.target_c - self.sensor_c)
        return min(max(power, 0.0), HEATER_MAX_W)

    def _integrate(self, dt: float) -> None:
        power = self._power()
        to_bowl = HEATER_TO_BOWL_W_PER_K * (self.heater_c - self.bowl_c)
        loss_k = LOSS_LID_OPEN_W_PER_K if self.lid_open else LOSS_LID_LOCKED_W_PER_K
        to_room = loss_k * (self.bowl_c - AMBIENT_C)
        self.heater_c += (power - to_bowl) * dt / HEATER_CAPACITY_J_PER_K
        self.bowl_c += (to_bowl - to_room) * dt / self.capacity_j_per_k
        self.sensor_c += (self.bowl_c - self.sensor_c) * dt / SENSOR_LAG_S
        self.heater_w = power
        self.energy_j += power * dt


@dataclass
class Motor:
    """Blade motor: follows its setpoint within a fraction of a second (reported at 1 Hz)."""

    speed: float = 0.0
    direction: str = "forward"
    kneading: bool = False
    rpm: float = 0.0
    _phase: int = field(default=0, repr=False)

    def set(self, speed: float, direction: str = "forward", kneading: bool = False) -> None:
        self.speed, self.direction, self.kneading = speed, direction, kneading

    def stop(self) -> None:
        self.set(0.0)

    def step(self, dt_s: float, rng: random.Random) -> None:
        if self.speed <= 0:
            self.rpm = 0.0
            return
        if self.kneading:
            # Kneading alternates short pushes each way; the sign is in `direction`.
            self._phase += 1
            self.direction = "forward" if self._phase % 4 < 2 else "reverse"
            target = KNEAD_RPM
        else:
            target = rpm_for_speed(self.speed)
        self.rpm = max(0.0, target * (1 + rng.gauss(0, 0.015)))


@dataclass
class Scale:
    """Weight of the bowl's contents (g). Pouring is gradual, a few tens of grams a second."""

    contents_g: float = 0.0
    pouring_to_g: float | None = None
    pour_rate_g_s: float = 50.0

    def pour(self, amount_g: float, rate_g_s: float) -> None:
        self.pouring_to_g = self.contents_g + amount_g
        self.pour_rate_g_s = rate_g_s

    def add(self, amount_g: float) -> None:
        self.contents_g += amount_g

    @property
    def pouring(self) -> bool:
        return self.pouring_to_g is not None

    def step(self, dt_s: float, rng: random.Random) -> None:
        if self.pouring_to_g is None:
            return
        flow = self.pour_rate_g_s * dt_s * rng.uniform(0.6, 1.4)
        self.contents_g = min(self.contents_g + flow, self.pouring_to_g)
        if self.contents_g >= self.pouring_to_g:
            self.pouring_to_g = None

    def reading(self, rng: random.Random, motor_rpm: float) -> float:
        """What the load cells report: noisier while the blades spin."""
        noise = 0.5 + (3.0 if motor_rpm > 1000 else 0.0)
        return max(0.0, round(self.contents_g + rng.gauss(0, noise), 1))
