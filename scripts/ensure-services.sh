#!/usr/bin/env bash
# Make sure the services the test suite needs are installed and running: a Docker engine,
# nats-server, mmdebstrap (to build the sandbox image offline from Debian packages) and Debian's
# postgresql binaries (the journal's tests start their own server with initdb + pg_ctl) and
# chromium (the browser tests).
# As root on Debian it installs and starts what is missing; elsewhere it says what to do.
# Under CI=true nothing may be missing, so every failure here is fatal.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The console tests (tests/server) and the report test drive Debian's headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if is_root && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
  fi
fi

docker_up() { timeout 10 docker info >/dev/null 2>&1; }
if ! docker_up; then
  if is_root; then
    log "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/moot-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
      docker_up && break
      sleep 1
    done
    docker_up || { tail -20 /var/log/moot-dockerd.log >&2 || true; die "dockerd did not answer within 60 s (log: /var/log/moot-dockerd.log)"; }
  else
    die "no Docker engine is reachable. Start one (sudo systemctl start docker) and make sure your user may use it (sudo usermod -aG docker \$USER), then run make test again."
  fi
fi
log "docker engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
log "nats-server: $(nats-server --version 2>/dev/null)"
log "postgresql: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | head -n 1)"
