#!/usr/bin/env bash
# `make image-test`: builds the container image from the Dockerfile with podman
# and checks that it works, without a Docker engine or an image registry:
#   - the base image debian:12-slim is made locally with debootstrap if podman
#     does not have it (no registry is needed);
#   - `chatd migrate` and the server run from the image against a throwaway
#     PostgreSQL 15 on the host (loopback, host networking), and the README's
#     register -> login -> rooms -> post flow goes through it;
#   - the container runs as a non-root user, its health check passes, and
#     SIGTERM stops it with exit code 0;
#   - the default SQLite settings work as that user with a volume on /app/data,
#     and the data survives a new container;
#   - `docker-compose config` validates docker-compose.yml.
# Idempotent; every step has a deadline; containers, the volume, PostgreSQL
# and temporary directories are removed on exit, whatever happens. The images
# (base and chatd) are kept so that the next run reuses their layers.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

IMAGE=${CHATD_IMAGE:-localhost/chatd:latest}
BASE_IMAGE=docker.io/library/debian:12-slim
PG_BIN=/usr/lib/postgresql/15/bin
PYTHON=/usr/bin/python3
RUN_ID=chatd-image-test-$$

step_name="start-up"
step_started=$SECONDS
timings=()
containers=()
volume=""
work_dir=""
pg_dir=""
pg_started=0

step() {
  [ "$step_name" = "start-up" ] || timings+=("$(printf '%-44s %4ss' "$step_name" $((SECONDS - step_started)))")
  step_name=$1
  step_started=$SECONDS
  echo "image-test: == $step_name" >&2
}

fail() {
  echo "image-test: FAILED in step \"$step_name\": $*" >&2
  local c
  for c in "${containers[@]}"; do
    echo "image-test: last log lines of container $c:" >&2
    podman_ logs --tail 30 "$c" >&2 2>&1 || true
  done
  if [ "$pg_started" = 1 ] && [ -f "$pg_dir/log" ]; then
    echo "image-test: last PostgreSQL log lines:" >&2
    tail -n 15 "$pg_dir/log" >&2 || true
  fi
  exit 1
}

cleanup() {
  local rc=$? c
  trap - EXIT INT TERM
  for c in "${containers[@]}"; do podman_ rm -f -v -t 3 "$c" >/dev/null 2>&1 || true; done
  [ -z "$volume" ] || podman_ volume rm -f "$volume" >/dev/null 2>&1 || true
  if [ "$pg_started" = 1 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  fi
  [ -z "$pg_dir" ] || rm -rf "$pg_dir"
  [ -z "$work_dir" ] || rm -rf "$work_dir"
  if [ "$rc" -eq 0 ]; then
    echo "image-test: OK, $SECONDS s in all:" >&2
    printf '  %s\n' "${timings[@]}" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM
# Subshells (command and process substitutions) leave it to their caller.
trap '[ "$BASHPID" != "$$" ] || fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

# Why the flags (DESIGN.md, "Library facts"): crun rejects this machine's
# hybrid cgroups, and podman lowers its own process limit to 32,768, under
# the container defaults; nofile stays under the caller's hard limit.
podman_cmd=(podman --runtime runc --cgroup-manager=cgroupfs)
podman_() { "${podman_cmd[@]}" "$@"; }
# podman's periodic health-check timers need systemd; where it is not running
# podman logs an error at every start and stop of a container with a health
# check. The check itself is run on demand below (podman healthcheck run).
podman_hc() { "${podman_cmd[@]}" "$@" 2> >(drop_systemd_noise); }
drop_systemd_noise() { grep -v 'systemd connection' >&2 || true; }
nofile_hard=$(ulimit -Hn)
nofile=19000
[ "$nofile_hard" = unlimited ] || [ "$nofile_hard" -ge "$nofile" ] || nofile=$nofile_hard
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=32768:32768)

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_get KEY... < json: prints the value at that path (list indexes as numbers).
json_get() {
  "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$@"
}

# api METHOD URL EXPECTED_STATUS [JSON_BODY]: sets $body; fails unless the
# status matches. Sends $token as a bearer token when it is set.
token=""
body=""
api() {
  local method=$1 url=$2 want=$3 data=${4:-} code
  local args=(-sS --max-time 15 -o "$work_dir/body" -w '%{http_code}' -X "$method")
  [ -z "$token" ] || args+=(-H "Authorization: Bearer $token")
  [ -z "$data" ] || args+=(-H 'Content-Type: application/json' --data "$data")
  code=$(curl "${args[@]}" "$url") || fail "$method $url: no HTTP answer"
  body=$(cat "$work_dir/body")
  [ "$code" = "$want" ] || fail "$method $url: expected $want, got $code: $body"
}

# wait_healthy CONTAINER URL SECONDS: until GET URL/health answers 200.
wait_healthy() {
  local c=$1 url=$2 deadline=$((SECONDS + $3))
  until curl -fsS --max-time 2 -o /dev/null "$url/health" 2>/dev/null; do
    [ "$(podman_ inspect --format '{{.State.Running}}' "$c" 2>/dev/null)" = true ] ||
      fail "container $c exited before serving /health"
    [ "$SECONDS" -lt "$deadline" ] || fail "no 200 from $url/health within $3 s"
    sleep 0.5
  done
}

# run_chatd NAME [podman run options...]: starts the image detached.
run_chatd() {
  local name=$1
  shift
  containers+=("$name")
  podman_hc run -d --name "$name" --network host "${limits[@]}" --health-interval disable \
    "$@" "$IMAGE" >/dev/null ||
    fail "podman run $name failed"
}

# The main Debian mirror this machine's apt uses (the bookworm suite), in
# either sources format; deb.debian.org if none is found.
debian_mirror() {
  local suite=$1 f uri=""
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    uri=$(awk -v s="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == s) { for (j = 2; j < i; j++) if ($j ~ /^https?:\/\//) { print $j; exit } } }' "$f")
    [ -z "$uri" ] || break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -r "$f" ] || continue
      uri=$(awk -v s="$suite" 'BEGIN { RS = "" } {
        n = split($0, line, "\n"); uris = ""; suites = ""; on = 1
        for (i = 1; i <= n; i++) {
          if (line[i] ~ /^URIs:/) uris = line[i]
          if (line[i] ~ /^Suites:/) suites = line[i] " "
          if (line[i] ~ /^Enabled:[ \t]*no/) on = 0
        }
        if (on && index(suites, " " s " ")) { sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f")
      [ -z "$uri" ] || break
    done
  fi
  echo "${uri:-$2}"
}

# slim_rootfs ROOT MIRROR SECURITY_MIRROR: makes a debootstrapped tree look
# like the official slim image: apt sources with updates and security, no
# documentation, no package lists, caches or downloaded packages. It deletes
# files, so it refuses anything but a debootstrap target under $work_dir.
slim_rootfs() {
  local root=$1 mirror=$2 security=$3
  if [ -z "$work_dir" ] || [ "${root#"$work_dir"/}" = "$root" ] || [ "$root" = "$work_dir/" ]; then
    fail "slim_rootfs: refusing to work on '$root'"
  fi
  if [ ! -f "$root/etc/debian_version" ] || [ ! -f "$root/var/lib/dpkg/status" ]; then
    fail "slim_rootfs: $root is not a debootstrapped tree"
  fi
  rm -f "$root/etc/apt/sources.list"
  printf '%s\n' 'Types: deb' "URIs: $mirror" 'Suites: bookworm bookworm-updates' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' '' \
    'Types: deb' "URIs: $security" 'Suites: bookworm-security' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    >"$root/etc/apt/sources.list.d/debian.sources"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    >"$root/etc/dpkg/dpkg.cfg.d/docker"
  local clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
  printf '%s\n' "DPkg::Post-Invoke { \"$clean\"; };" "APT::Update::Post-Invoke { \"$clean\"; };" \
    'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$root/etc/apt/apt.conf.d/docker-clean"
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  find "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" "$root/var/lib/apt/lists" \
    "$root/var/cache/apt" -mindepth 1 ! -type d -delete
  find "$root/var/log" -name '*.log' -type f -delete
  : >"$root/etc/resolv.conf"
}

# ---------------------------------------------------------------------------
step "install podman, runc, debootstrap, docker-compose"
[ "$(id -u)" -eq 0 ] || fail "podman (rootful) and debootstrap need root: run sudo make image-test"
CHATD_DEPS_EXTRA="podman runc debootstrap docker-compose postgresql-15 curl python3" \
  timeout 900 scripts/deps.sh || fail "installing packages with apt-get failed"
for tool in podman runc debootstrap docker-compose "$PG_BIN/initdb"; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
work_dir=$(mktemp -d /tmp/chatd-image-test.XXXXXX)

# ---------------------------------------------------------------------------
step "base image $BASE_IMAGE"
if podman_ image exists "$BASE_IMAGE"; then
  echo "image-test: reusing the local $BASE_IMAGE" >&2
else
  mirror=$(debian_mirror bookworm http://deb.debian.org/debian)
  security=$(debian_mirror bookworm-security http://deb.debian.org/debian-security)
  echo "image-test: debootstrap bookworm from $mirror" >&2
  rootfs=$work_dir/rootfs
  timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work_dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work_dir/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
  slim_rootfs "$rootfs" "$mirror" "$security"
  tar -C "$rootfs" -c . | podman_ import --quiet --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null ||
    fail "podman import of the debootstrapped root file system failed"
  rm -rf "$rootfs"
fi

# ---------------------------------------------------------------------------
step "podman build"
old_image=$(podman_ image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# docker format keeps HEALTHCHECK (OCI images have no such field).
build_flags=(--pull=never --format docker --network host "${limits[@]}")
timeout 1800 "${podman_cmd[@]}" build "${build_flags[@]}" -t "$IMAGE" . ||
  fail "podman build failed (output above)"
# Keep the layers the next build reuses; delete what this build replaced.
new_image=$(podman_ image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$old_image" ] && [ "$old_image" != "$new_image" ]; then
  podman_ rmi "$old_image" >/dev/null 2>&1 || true
fi
build_stage=$(timeout 300 "${podman_cmd[@]}" build -q "${build_flags[@]}" --target build .)
for stale in $(podman_ images -q --no-trunc --filter dangling=true --filter label=chatd.stage=build); do
  [ "$stale" = "$build_stage" ] || [ "$stale" = "sha256:$build_stage" ] ||
    podman_ rmi "$stale" >/dev/null 2>&1 || true
done

step "image metadata and libraries"
[ "$(podman_ image inspect --format '{{.Config.User}}' "$IMAGE")" = "10001:10001" ] ||
  fail "the image's user is not 10001:10001"
[ "$(podman_ image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")" = '["/usr/local/bin/chatd"]' ] ||
  fail "unexpected entrypoint"
cmd=$(podman_ image inspect --format '{{json .Config.Cmd}}' "$IMAGE")
[ "$cmd" = "null" ] || [ "$cmd" = "[]" ] || fail "CMD should be empty, is $cmd"
podman_ image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q /health ||
  fail "the image has no HEALTHCHECK on /health"
missing=$(podman_ run --rm --network host "${limits[@]}" --no-healthcheck --entrypoint ldd "$IMAGE" /usr/local/bin/chatd | grep 'not found' || true)
[ -z "$missing" ] || fail "shared libraries missing from the runtime stage: $missing"
podman_ run --rm --network host "${limits[@]}" --no-healthcheck "$IMAGE" --version >/dev/null || fail "chatd --version failed"

# ---------------------------------------------------------------------------
step "throwaway PostgreSQL 15"
pg_dir=$(mktemp -d /tmp/chatd-image-test-pg.XXXXXX)
chown postgres:postgres "$pg_dir"
pg_port=$(free_port)
runuser -u postgres -- "$PG_BIN/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 \
  --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log" >&2; fail "initdb failed"; }
pg_started=1
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_dir/data" -w -t 60 -l "$pg_dir/log" \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir" start >/dev/null || fail "pg_ctl start failed"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres chat || fail "createdb failed"
pg_url="postgres://postgres@127.0.0.1:$pg_port/chat"
psql_chat() { "$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d chat -tAc "$1"; }

step "chatd migrate from the image"
timeout 120 "${podman_cmd[@]}" run --rm --name "$RUN_ID-migrate" --network host "${limits[@]}" --no-healthcheck \
  -e DATABASE_URL="$pg_url" "$IMAGE" migrate || fail "chatd migrate exited with an error"
[ "$(psql_chat 'SELECT count(*) FROM schema_migrations')" -gt 0 ] || fail "no migration recorded"
[ "$(psql_chat 'SELECT count(*) FROM rooms')" -eq 3 ] || fail "the seed rooms are missing"

step "chatd on PostgreSQL: start and /health"
port=$(free_port)
base_url="http://127.0.0.1:$port"
run_chatd "$RUN_ID-pg" -e DATABASE_URL="$pg_url" -e PORT="$port" -e HOST=127.0.0.1 \
  -e JWT_SECRET="$(head -c 48 /dev/urandom | base64 -w0)"
wait_healthy "$RUN_ID-pg" "$base_url" 30

step "README flow: register, login, rooms, post"
# The values of the README's "Try it" section: every run has a fresh database.
api POST "$base_url/auth/register" 201 \
  "{\"email\":\"user@example.com\",\"password\":\"password123\",\"username\":\"testuser\"}"
api POST "$base_url/auth/login" 200 "{\"email\":\"user@example.com\",\"password\":\"password123\"}"
token=$(json_get token <<<"$body") || fail "login answered without a token: $body"
api GET "$base_url/rooms" 200
[ "$(json_get 0 name <<<"$body")" = General ] || fail "GET /rooms does not start with General: $body"
content="Hello, World!"
api POST "$base_url/rooms/1/messages" 201 "{\"content\":\"$content\"}"
[ "$(json_get content <<<"$body")" = "$content" ] || fail "POST answered another message: $body"
message_id=$(json_get id <<<"$body")
api GET "$base_url/rooms/1/messages?limit=20" 200
"$PYTHON" -c 'import json, sys; sys.exit(not any(m["id"] == int(sys.argv[1]) and m["content"] == sys.argv[2] for m in json.load(sys.stdin)["messages"]))' \
  "$message_id" "$content" <<<"$body" || fail "the posted message does not come back: $body"
[ "$(psql_chat "SELECT content FROM messages WHERE id = $message_id")" = "$content" ] ||
  fail "the message is not in PostgreSQL"

step "non-root, health check, SIGTERM"
pid=$(podman_ inspect --format '{{.State.Pid}}' "$RUN_ID-pg")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 10001 ] || fail "chatd runs as uid $uid, not 10001"
[ "$(podman_ exec "$RUN_ID-pg" id -u)" = 10001 ] || fail "podman exec does not run as 10001"
timeout 30 "${podman_cmd[@]}" healthcheck run "$RUN_ID-pg" >/dev/null || fail "the image's HEALTHCHECK fails"
timeout 60 "${podman_cmd[@]}" stop -t 20 "$RUN_ID-pg" >/dev/null 2> >(drop_systemd_noise) || fail "podman stop failed"
code=$(podman_ inspect --format '{{.State.ExitCode}}' "$RUN_ID-pg")
[ "$code" = 0 ] || fail "chatd exited with $code after SIGTERM, not 0"

# ---------------------------------------------------------------------------
step "default SQLite settings with a volume"
volume=$RUN_ID-data
podman_ volume create "$volume" >/dev/null || fail "podman volume create failed"
port=$(free_port)
base_url="http://127.0.0.1:$port"
# No DATABASE_URL and no JWT_SECRET: the image's defaults, so chatd writes
# both the database and a generated secret into the volume as uid 10001.
run_chatd "$RUN_ID-sqlite" -v "$volume:/app/data" -e PORT="$port" -e HOST=127.0.0.1
wait_healthy "$RUN_ID-sqlite" "$base_url" 30
token=""
api POST "$base_url/auth/register" 201 \
  "{\"email\":\"user@example.com\",\"password\":\"password123\",\"username\":\"testuser\"}"
token=$(json_get token <<<"$body")
api POST "$base_url/rooms/1/messages" 201 "{\"content\":\"$content\"}"
listing=$(podman_ exec "$RUN_ID-sqlite" stat -c '%u %a %n' /app/data /app/data/chat.db /app/data/jwt_secret) ||
  fail "the volume does not hold chat.db and jwt_secret"
grep -q '^10001 600 /app/data/jwt_secret$' <<<"$listing" || fail "jwt_secret is not 0600 uid 10001: $listing"
grep -q '^10001 [0-9]* /app/data/chat.db$' <<<"$listing" || fail "chat.db is not owned by 10001: $listing"
timeout 60 "${podman_cmd[@]}" stop -t 20 "$RUN_ID-sqlite" >/dev/null 2> >(drop_systemd_noise) || fail "podman stop failed"

step "SQLite volume survives a new container"
run_chatd "$RUN_ID-sqlite2" -v "$volume:/app/data" -e PORT="$port" -e HOST=127.0.0.1
wait_healthy "$RUN_ID-sqlite2" "$base_url" 30
# The old token still verifies (same generated secret) and the message is there.
api GET "$base_url/rooms/1/messages?limit=20" 200
grep -qF "$content" <<<"$body" || fail "the message did not survive the new container: $body"

# ---------------------------------------------------------------------------
step "docker-compose config"
: >"$work_dir/empty.env"
JWT_SECRET=image-test-placeholder-secret-of-32-bytes-or-more \
  docker-compose --env-file "$work_dir/empty.env" -f docker-compose.yml config -q ||
  fail "docker-compose config rejects docker-compose.yml"
if env -u JWT_SECRET docker-compose --env-file "$work_dir/empty.env" -f docker-compose.yml config -q 2>/dev/null; then
  fail "docker-compose.yml accepts a missing JWT_SECRET"
fi

step "done"
