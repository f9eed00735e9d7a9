/**
 * Liveness and readiness, unauthenticated: /healthz says the process serves
 * requests; /readyz says every issuer's metadata and keys are loaded, so
 * tokens can be validated (until then token-bearing requests get 503).
 */
import type { FastifyInstance } from 'fastify'
import type { Authenticator } from '../auth/authenticator.js'
import { UNAVAILABLE_RETRY_AFTER_SECONDS } from '../config/defaults.js'

export const HEALTH_PATH = '/healthz'
export const READY_PATH = '/readyz'

export function registerHealth (app: FastifyInstance, authenticator: Authenticator): void {
  const config = { gwRouteId: null, kind: 'health' }
  app.get(HEALTH_PATH, { config }, (_req, reply) => {
    void reply.header('cache-control', 'no-store').send({ status: 'ok' })
  })
  app.get(READY_PATH, { config }, (_req, reply) => {
    const pending = [...authenticator.verifiers.values()].filter((v) => v.state !== 'ready').map((v) => v.config.issuer)
    if (pending.length === 0) {
      void reply.header('cache-control', 'no-store').send({ status: 'ready' })
    } else {
      void reply.code(503).header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)).header('cache-control', 'no-store').send({ status: 'starting', pendingIssuers: pending })
    }
  })
}
