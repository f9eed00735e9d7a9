/**
 * `GET {metrics.path}` on the main listener (when `metrics.listen` is not
 * set): the Prometheus text format, unauthenticated and never rate limited.
 * Keep the main listener private, or set metrics.listen (config.warnings
 * says so when listen.host is not loopback).
 */
import type { FastifyInstance } from 'fastify'
import type { MetricsSource } from '../observability/metrics-server.js'

export function registerMetricsRoute (app: FastifyInstance, path: string, source: MetricsSource): void {
  // A failure to collect is a 500 from the gateway's error handler (logged there).
  app.get(path, { config: { gwRouteId: null, kind: 'metrics' } }, async (_request, reply) => {
    const text = await source.scrape()
    return await reply.header('content-type', source.contentType).header('cache-control', 'no-store').send(text)
  })
}
