"""`dingtalk-bridge run --simulator HOST:PORT`: the bundled simulator beside the daemon, for demos.

It registers every robot and app of the config whose URL points at the simulator, with the same
secret and keywords, so a newcomer's first run exercises signing and keywords exactly as real
DingTalk would; unknown robots are accepted too, so a typo still shows up in the simulator page.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from bridge.config.compile import load_config
from bridge.errors import ConfigError
from bridge.simulator.server import SimulatorServer, serve_in_thread
from bridge.simulator.spec import AppSpec, RobotSpec, SimulatorSpec
from bridge.simulator.state import SimulatorState

log = logging.getLogger("bridge.simulator")


def spec_for_config(config_path: str) -> SimulatorSpec:
    spec = SimulatorSpec()
    try:
        config = load_config(config_path)
    except ConfigError:
        return spec  # the daemon reports the problems itself
    for robot in config.robot_targets().values():
        token = parse_qs(urlsplit(robot.webhook).query).get("access_token", [""])[0]
        spec.robots[token] = RobotSpec(secret=robot.secret, keywords=robot.keywords)
    for app in config.app_targets().values():
        spec.apps[app.app_key] = AppSpec(app_secret=app.app_secret, agent_id=app.agent_id)
    for listening in config.stream_inputs().values():  # their Stream connections, too
        stream = listening.stream
        if stream is not None and stream.app_key not in spec.apps:
            spec.apps[stream.app_key] = AppSpec(app_secret=stream.app_secret, agent_id=0)
    return spec


def start_for_config(config_path: str, listen: str) -> SimulatorServer:
    state = SimulatorState(
        spec_for_config(config_path), accept_unknown_robots=True, log=lambda line: log.info(line)
    )
    server = serve_in_thread(listen, state)
    log.info(f"DingTalk simulator on {server.url} (open it in a browser to watch messages arrive)")
    log.info(f"DingTalk simulator's Stream gateway on {server.stream.url}/connect")
    return server
