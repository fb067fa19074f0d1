"""The appliance simulator behind `epicura simulate`.

Layers, from pure to I/O:
- `physics`: the bowl's thermal model, the motor and the scale (no clock, no I/O);
- `program` and `session`: a recipe's step program and the runner that cooks it step by step,
  emitting session events;
- `appliance`: one appliance's model (physics + session + lid + alerts), advanced by `tick(dt)`;
- `messages`: the payloads of `mqtt-topics.md` (envelope, presence, state, telemetry, ...);
- `cloud`, `transport`, `device`, `fleet`: the HTTPS device API, MQTT or HTTPS delivery, the
  per-appliance driver and the fleet (provisioning, state file, signals).
"""
