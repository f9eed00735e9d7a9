/**
 * Liveness and readiness, unauthenticated and never rate limited, at the
 * configured paths (health.livenessPath, default /healthz; health.readinessPath,
 * default /readyz): liveness says the process serves requests; readiness says
 * every issuer's metadata and keys are loaded, so tokens can be validated
 * (until then token-bearing requests get 503). The config is valid by then:
 * an invalid one never starts (or is refused on reload).
 */
import type { FastifyInstance } from 'fastify'
import type { Authenticator } from '../auth/authenticator.js'
import type { HealthConfig } from '../config/types.js'
import { UNAVAILABLE_RETRY_AFTER_SECONDS } from '../config/defaults.js'

export function registerHealth (app: FastifyInstance, authenticator: Authenticator, paths: HealthConfig): void {
  const config = { gwRouteId: null, kind: 'health' }
  app.get(paths.livenessPath, { config }, (_req, reply) => {
    void reply.header('cache-control', 'no-store').send({ status: 'ok' })
  })
  app.get(paths.readinessPath, { config }, (_req, reply) => {
    const pending = [...authenticator.verifiers.values()].filter((v) => v.state !== 'ready').map((v) => v.config.issuer)
    if (pending.length === 0) {
      void reply.header('cache-control', 'no-store').send({ status: 'ready' })
    } else {
      void reply.code(503).header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)).header('cache-control', 'no-store').send({ status: 'starting', pendingIssuers: pending })
    }
  })
}
