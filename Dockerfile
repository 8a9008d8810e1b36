# syntax=docker/dockerfile:1
# llm-gateway container image.
#
#   docker build -t llm-gateway .
#   docker run -d --name llm-gateway -p 8080:8080 --env-file .env -v llm-gateway-data:/data llm-gateway
#
# Settings come from the environment at run time (.env.example lists them all) or from a YAML file
# mounted into /app (./gateway.yaml) or named by GATEWAY_CONFIG_FILE; flags go after the image name,
# as with the command (`docker run … llm-gateway -p 2023 -nocid`). Nothing secret is baked in.
#
# Three stages: production dependencies only, the TypeScript build with dev dependencies, and the
# runtime, which holds node_modules without dev dependencies, dist/ and package.json, runs as the
# unprivileged `node` user and keeps its state (BASE_PATH: black.json and other files the gateway
# writes) in the /data volume.

FROM node:24.22.3-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# no production dependency has an install script
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
# the embedded mock upstream (GATEWAY_UPSTREAM_URL=mock): built beside the gateway, loaded only when asked
COPY mock ./mock
RUN npm run build

FROM node:24.22.3-bookworm-slim
# GATEWAY_HOST: a container must listen on every interface. The port stays the gateway's default
# (8080) unless GATEWAY_PORT / PROXY_PORT says otherwise; the health probe follows it.
ENV NODE_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    BASE_PATH=/data
WORKDIR /app
# application files stay owned by root: the gateway cannot rewrite its own code
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM: stop accepting, let in-flight streams finish (GATEWAY_SHUTDOWN_GRACE_MS), exit 0
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
ENTRYPOINT ["node", "dist/src/cli.js"]
