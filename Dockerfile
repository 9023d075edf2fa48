# Runnel's container image (docs/design.md, "Container image"). The build stage runs what
# test/package/pack.test.ts runs: `npm ci`, `npm run build`, `npm pack`; the runtime stage installs
# the tarball the way a user does (`npm install <tarball>`) and runs `runnel start`.
#
#   docker build -t runnel .
#   docker run -p 8080:8080 -v runnel-data:/data -e RUNNEL_ADMIN_PASSWORD=change-me-please \
#     --read-only --tmpfs /tmp --stop-timeout 30 runnel
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm pack --ignore-scripts --pack-destination /tmp

FROM ${NODE_IMAGE}
WORKDIR /opt/runnel
COPY --from=build /tmp/runnel-*.tgz /tmp/
RUN echo '{ "private": true }' > package.json \
 && npm install --omit=dev --no-audit --no-fund /tmp/runnel-*.tgz \
 && rm /tmp/runnel-*.tgz \
 && npm cache clean --force \
 && mkdir /data \
 && chown 1000:1000 /data
# Everything Runnel writes is under /data: the root filesystem can be mounted read-only.
ENV NODE_ENV=production \
    RUNNEL_DATA_DIR=/data \
    RUNNEL_HOST=0.0.0.0 \
    RUNNEL_PORT=8080
VOLUME ["/data"]
# The image's `node` account, by number so the host and orchestrators can resolve it.
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.RUNNEL_PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The bin's shebang execs node, so node is PID 1 and receives `docker stop`'s SIGTERM itself:
# runnel start stops accepting, drains and closes every component, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/runnel/node_modules/.bin/runnel", "start"]
