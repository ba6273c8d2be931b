"""A local DingTalk that behaves like the real one, for end-to-end tests and demos.

Public API:

- `SimulatorSpec`, `RobotSpec`, `AppSpec`, `load_spec`: what is registered.
- `SimulatorState`: the pure, thread-safe core (handlers take `now` and return
  `(http_status, json_body)`).
- `serve_in_thread(listen, state) -> SimulatorServer` (`.url`, `.port`, `.state`, `.stop()`;
  `.stream.url`: the Stream gateway's WebSocket server, on a port of its own: stream.py).
- `SimulatorApp`: the WSGI app, if you want to mount it elsewhere.
- `main(argv)`: the CLI (`--listen`, `--stream-port`, `--spec`, `--accept-unknown-robots`,
  `--rate-per-minute`, `--quiet`).
"""

from __future__ import annotations

from bridge.simulator.cli import main
from bridge.simulator.server import SimulatorServer, serve_in_thread
from bridge.simulator.spec import AppSpec, RobotSpec, SimulatorSpec, SpecError, load_spec
from bridge.simulator.state import SimulatorState
from bridge.simulator.wsgi import SimulatorApp

__all__ = [
    "AppSpec",
    "RobotSpec",
    "SimulatorApp",
    "SimulatorServer",
    "SimulatorSpec",
    "SimulatorState",
    "SpecError",
    "load_spec",
    "main",
    "serve_in_thread",
]
