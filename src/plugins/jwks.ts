/**
 * /.well-known/jwks.json: the public keys of the identity assertion (RFC 7517
 * JWK Set; every configured key, so assertions signed before a rotation still
 * verify). Public, CORS from any origin, cacheable, serialised once. Served
 * only when the gateway has signing keys: configured ones, or one generated
 * because a route signs assertions.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import { JWKS_MAX_AGE_SECONDS } from '../config/defaults.js'
import type { SigningKeys } from '../identity/keys.js'
import { sendError } from './http-errors.js'

export const JWKS_PATH = '/.well-known/jwks.json'

export function registerJwks (app: FastifyInstance, keys: SigningKeys): void {
  // A Buffer body: Fastify adds no charset parameter (JSON has none, RFC 8259 §11).
  const body = Buffer.from(keys.jwksJson)
  const config = { gwRouteId: JWKS_PATH, kind: 'metadata' }
  app.route({
    method: ['GET', 'HEAD'],
    url: JWKS_PATH,
    config,
    handler: (_req, reply: FastifyReply) => {
      void reply
        // RFC 7517 §8.5.1.
        .header('content-type', 'application/jwk-set+json')
        .header('access-control-allow-origin', '*')
        .header('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
        .send(body)
    }
  })
  app.route({
    method: 'OPTIONS',
    url: JWKS_PATH,
    config,
    handler: (_req, reply: FastifyReply) => {
      void reply
        .code(204)
        .header('access-control-allow-origin', '*')
        .header('access-control-allow-methods', 'GET, OPTIONS')
        .header('access-control-max-age', '86400')
        .send()
    }
  })
  app.route({
    method: ['POST', 'PUT', 'DELETE', 'PATCH'],
    url: JWKS_PATH,
    config,
    handler: (_req, reply: FastifyReply) => { void sendError(reply.header('allow', 'GET, HEAD, OPTIONS'), 405, 'method_not_allowed', 'The key set is read-only: use GET') }
  })
}
