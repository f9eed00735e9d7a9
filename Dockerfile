# syntax=docker/dockerfile:1
# mcp-auth-gateway container image.
#
#   docker build -t mcp-auth-gateway .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/gateway.yaml:/etc/mcp-auth-gateway/gateway.yaml:ro" mcp-auth-gateway
#
# The config file is $MCP_GATEWAY_CONFIG (default below); arguments after the image
# name go to the command line, e.g. `--check`, or `--config <file>` (which wins over
# the env var). In the config, listen.host must be 0.0.0.0 to be reachable from outside
# the container, and `port: ${MCP_GATEWAY_PORT}` keeps the port in step with the
# HEALTHCHECK (set MCP_GATEWAY_HEALTHCHECK_URL if /healthz is elsewhere, e.g. behind TLS).
#
# No Docker engine runs in CI: test/e2e/container.test.ts follows this file step by step
# (the COPY and RUN lines of both stages, the ENTRYPOINT, ENV and HEALTHCHECK) in a
# temporary directory, and checks the facts below (base, user, --omit=dev, labels).

# Build stage: the dev toolchain compiles TypeScript to dist/src.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies and the compiled output only, as the non-root node user.
FROM node:24-bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mcp-auth-gateway" \
      org.opencontainers.image.description="Authenticating reverse proxy that makes any unmodified MCP server an OAuth 2.1 protected resource" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
# NODE_OPTIONS: Node 24 lets V8's young generation grow to 128 MB (Node 20: 32 MB). Capped at
# Node 20's size, 9,975 idle SSE streams took 339 MB instead of 407 and 10 s of request load
# 167 MB instead of 187, with no CPU difference beyond the run-to-run spread (BENCHMARKS.md).
# Setting NODE_OPTIONS at run time replaces it.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=16 \
    MCP_GATEWAY_CONFIG=/etc/mcp-auth-gateway/gateway.yaml \
    MCP_GATEWAY_PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: no production dependency needs one. The npm cache is not kept in the image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY gateway.example.yaml LICENSE ./
# The files above stay owned by root: the gateway cannot modify its own code or config.
USER node
EXPOSE 8080
# The gateway drains in-flight requests on SIGTERM (at most shutdownTimeoutSeconds).
STOPSIGNAL SIGTERM
# node itself, since slim images have no curl; any answer but 2xx, or none within 2 s, fails.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.MCP_GATEWAY_HEALTHCHECK_URL||'http://127.0.0.1:'+(process.env.MCP_GATEWAY_PORT||8080)+'/healthz',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/main.js"]
