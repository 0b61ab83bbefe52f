# frontdoor-gateway as a container: `frontdoor serve /config/gateway.yaml`, the public listener on 8080 and the
# admin endpoints (/healthz, /readyz, /metrics) on 9090. Mount your gateway.yaml at /config (a ConfigMap in
# Kubernetes: examples/kubernetes/). docs/serve.md#container says how to build and run it.
#
#   docker build -t frontdoor .
#   docker run --rm -p 8080:8080 -p 9090:9090 -v "$PWD/gateway.yaml:/config/gateway.yaml:ro" frontdoor
#
# Node.js 24 is the current LTS line; the image is Debian slim, so a shell and coreutils are there for debugging.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript to dist/, then keep only the production dependencies
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY index.ts testing.ts ./
COPY lib ./lib
COPY middleware ./middleware
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: dist, bin and the production node_modules, run as the unprivileged `node` user of the base image
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root bin ./bin
USER node
EXPOSE 8080 9090
# Liveness through the admin port; node is in the image, curl is not.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:9090/healthz',(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
# serve drains on SIGTERM: /readyz turns 503, requests in flight finish (at most --drain-timeout), pools and Redis close.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/frontdoor.js"]
CMD ["serve", "/config/gateway.yaml", "--port", "8080", "--admin-port", "9090", "--drain-timeout", "20s"]
