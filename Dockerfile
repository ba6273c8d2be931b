# dingtalk-bridge as a container image: non-root, the package and its dependencies only.
#   docker build -t dingtalk-bridge .
#   docker run -v "$PWD/config.yaml:/etc/dingtalk-bridge/config.yaml:ro" -p 8060:8060 dingtalk-bridge
# The config must listen on 0.0.0.0 (server.listen) to be reached from outside the container.
# Several replicas on one PostgreSQL: packaging/kubernetes/ and the README, "Run several replicas".

# Pinned to a patch release, so a rebuild gets the same interpreter; bump it deliberately.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Build the wheels (the bridge's from this checkout, its dependencies' from the index) in a
# stage of their own: the final image holds no source tree, build tools or pip cache.
FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# A user of its own with a fixed uid/gid, so volumes and Kubernetes' runAsUser can name it.
ARG UID=10001
RUN groupadd --system --gid "${UID}" dingtalk-bridge \
    && useradd --system --uid "${UID}" --gid dingtalk-bridge --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin dingtalk-bridge \
    && install -d -o dingtalk-bridge -g dingtalk-bridge -m 0700 /var/lib/dingtalk-bridge \
    && install -d -m 0755 /etc/dingtalk-bridge
# --no-index: exactly the wheels built above, nothing fetched again (a bind mount, BuildKit's
# default since Docker 23, so the wheels never become a layer of the image).
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/dingtalk_bridge-*.whl

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The SQLite state (the default, one replica): keep it on a volume. With `state: {url}` (several
# replicas on PostgreSQL) nothing is written here.
# STATE_DIRECTORY as systemd would set it: config.example.yaml's state_dir reads it.
ENV STATE_DIRECTORY=/var/lib/dingtalk-bridge
VOLUME ["/var/lib/dingtalk-bridge"]
EXPOSE 8060
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser of its own.
USER ${UID}:${UID}

# /-/healthy: senders and file inputs running (the daemon's own watchdog answer). Python, as the
# image has no curl; urlopen raises (exit 1) on anything but a 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8060/-/healthy', timeout=4)"]

# SIGTERM drains the senders for server.shutdown_timeout (10s by default) before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dingtalk-bridge", "run"]
CMD ["-c", "/etc/dingtalk-bridge/config.yaml"]
