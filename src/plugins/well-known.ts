/**
 * RFC 9728 protected-resource metadata routes. Public (no token), CORS from
 * any origin, GET and OPTIONS only, documents serialised once at startup.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { GatewayConfig } from '../config/types.js'
import { UNAVAILABLE_RETRY_AFTER_SECONDS } from '../config/defaults.js'
import { buildMetadata, PRM_PREFIX } from '../metadata/protected-resource.js'
import { AuthorizationServerMirror } from '../metadata/as-mirror.js'
import { sendError } from './http-errors.js'

const OTHER_METHODS = ['POST', 'PUT', 'DELETE', 'PATCH'] as const

export function registerWellKnown (app: FastifyInstance, config: GatewayConfig): void {
  const serve = (url: string, json: string, routeId: string): void => {
    const get = (_req: unknown, reply: FastifyReply): void => {
      void reply
        .header('content-type', 'application/json; charset=utf-8')
        .header('access-control-allow-origin', '*')
        .header('cache-control', 'public, max-age=300')
        .send(json)
    }
    const preflight = (_req: unknown, reply: FastifyReply): void => {
      void reply
        .code(204)
        .header('access-control-allow-origin', '*')
        .header('access-control-allow-methods', 'GET, OPTIONS')
        .header('access-control-allow-headers', 'MCP-Protocol-Version, Content-Type')
        .header('access-control-max-age', '86400')
        .send()
    }
    const notAllowed = (_req: unknown, reply: FastifyReply): void => {
      void sendError(reply.header('allow', 'GET, OPTIONS'), 405, 'method_not_allowed', 'Metadata is read-only: use GET')
    }
    const config = { gwRouteId: routeId, kind: 'metadata' }
    app.route({ method: ['GET', 'HEAD'], url, handler: get, config })
    app.route({ method: 'OPTIONS', url, handler: preflight, config })
    app.route({ method: [...OTHER_METHODS], url, handler: notAllowed, config })
  }

  for (const route of config.routes) {
    const { json } = buildMetadata(config, route)
    // The document for the route and for any sub-path a client may use as its server URL (e.g. the legacy /sse).
    serve(PRM_PREFIX + route.path, json, route.id)
    serve(PRM_PREFIX + route.path + '/*', json, route.id)
  }
  const mirrored = config.mirrorAuthorizationServerMetadata
  if (mirrored !== undefined) {
    const as = config.authorizationServers.find((a) => a.issuer === mirrored)!
    const mirror = new AuthorizationServerMirror(as.issuer, as.metadataUrl)
    const send = (reply: FastifyReply, json: string | undefined): void => {
      if (json === undefined) {
        void sendError(reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)), 503, 'temporarily_unavailable', 'The authorization server metadata cannot be fetched; retry later')
        return
      }
      void reply
        .header('content-type', 'application/json; charset=utf-8')
        .header('access-control-allow-origin', '*')
        .header('cache-control', 'public, max-age=300')
        .send(json)
    }
    for (const url of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const config = { gwRouteId: url, kind: 'metadata' }
      app.route({
        method: ['GET', 'HEAD'],
        url,
        config,
        handler: (_req, reply) => {
          const got = mirror.get()
          if (typeof got === 'string') send(reply, got)
          else return got.then((json) => { send(reply, json); return reply })
        }
      })
      app.route({ method: [...OTHER_METHODS], url, config, handler: (_req, reply) => { void sendError(reply.header('allow', 'GET'), 405, 'method_not_allowed', 'Metadata is read-only: use GET') } })
    }
  }
  // RFC 9728 §3.1 root form: only unambiguous with a single route.
  if (config.routes.length === 1) {
    const only = config.routes[0]!
    serve(PRM_PREFIX, buildMetadata(config, only).json, only.id)
  }
}
