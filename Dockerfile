# chatd container image: a build stage with the -dev packages and the
# compiler, and a runtime stage with only the shared libraries chatd links.
#
#   docker build -t chatd .
#   docker run -p 3000:3000 -v chatd-data:/app/data -e JWT_SECRET=... chatd
#   docker run --rm -e DATABASE_URL=postgres://... chatd migrate
#
# Everything comes from Debian 12's archive, as for a build on the host.

FROM debian:12-slim AS build
# Marks this stage's cached images, so that a rebuild can delete the stale ones.
LABEL chatd.stage=build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libuv1-dev libhttp-parser-dev libjansson-dev libjwt-dev libsodium-dev \
      libssl-dev libsqlite3-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what `make build/chatd` reads (see .dockerignore), so editing tests
# or docs does not invalidate the compile layer.
COPY Makefile VERSION ./
COPY scripts/ scripts/
COPY src/ src/
RUN make -j"$(nproc)" build/chatd && strip --strip-debug -o /chatd build/chatd

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# The run-time halves of the build stage's -dev packages; curl is for the
# health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libhttp-parser2.9 libjansson4 libjwt0 libsodium23 \
      libssl3 libsqlite3-0 libpq5 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid, so a bind-mounted data directory can be chowned to it
# and Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --gid 10001 chatd \
 && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin chatd \
 && mkdir -p /app/data \
 && chown 10001:10001 /app/data \
 && chmod 0700 /app/data
COPY --from=build /chatd /usr/local/bin/chatd
COPY LICENSE /usr/share/doc/chatd/LICENSE

WORKDIR /app
# The SQLite database and the generated JWT secret (when JWT_SECRET is unset)
# live in /app/data; a named volume keeps them across container upgrades.
VOLUME ["/app/data"]
ENV PORT=3000 \
    HOST=0.0.0.0 \
    DATABASE_URL=sqlite:/app/data/chat.db
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${PORT}/health" || exit 1
ENTRYPOINT ["/usr/local/bin/chatd"]
# Empty, so `docker run IMAGE` serves and `docker run IMAGE migrate` migrates;
# without it the base image's CMD ["bash"] would become chatd's argument.
CMD []
