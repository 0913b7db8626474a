# The devkit image: the vendor sandboxes of `gateway sandbox` (deploy/compose's stand-in vendor), never the gateway.
# It is the runtime plus the devkit (devkit/) and the `demo` extra; the gateway image (Dockerfile) carries neither.
#   docker build -f deploy/docker/devkit.Dockerfile -t event-gateway-devkit:0.1.0 .
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gateway
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY devkit ./devkit
RUN pip install '.[demo]' --constraint constraints.txt && gateway sandbox --help >/dev/null
USER 10001:10001
ENTRYPOINT ["gateway"]
CMD ["sandbox", "--host", "0.0.0.0"]
