/**
 * Optional system `fastify-http-proxy-jose`: the "Node: Fastify +
 * @fastify/http-proxy + jose + cache" setup from the performance issue,
 * written the straightforward way. Fastify 5 (logger off), @fastify/http-proxy
 * with its defaults forwarding everything to the bare upstream, and an
 * onRequest hook that verifies the bearer JWT with jose (createRemoteJWKSet,
 * jwtVerify with issuer, audience and RS256) and caches verified tokens in a
 * Map keyed by the token, each entry valid until the token's exp.
 * Missing or invalid tokens get 401, a token without the scope 403.
 *
 * Environment: PORT, UPSTREAM (origin), ISSUER, JWKS_URI, AUDIENCE, SCOPE.
 */
import fastifyHttpProxy from '@fastify/http-proxy'
import Fastify, { type FastifyReply } from 'fastify'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { requiredEnv } from './env.js'

const env = requiredEnv
const issuer = env('ISSUER')
const audience = env('AUDIENCE')
const scope = env('SCOPE')
const jwks = createRemoteJWKSet(new URL(env('JWKS_URI')))

/** token → exp in ms; at most MAX_CACHE entries (the oldest goes first). */
const cache = new Map<string, number>()
const MAX_CACHE = 10_000

const unauthorized = (reply: FastifyReply, error: string): FastifyReply =>
  reply.code(401).header('www-authenticate', `Bearer error="${error}"`).send({ error })

const app = Fastify({ logger: false })

app.addHook('onRequest', async (request, reply) => {
  const h = request.headers.authorization
  if (h === undefined || !h.startsWith('Bearer ')) return unauthorized(reply, 'invalid_request')
  const token = h.slice(7)
  const exp = cache.get(token)
  if (exp !== undefined) {
    if (exp > Date.now()) return
    cache.delete(token)
  }
  let payload
  try {
    ({ payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ['RS256'] }))
  } catch {
    return unauthorized(reply, 'invalid_token')
  }
  if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes(scope)) {
    return reply.code(403).header('www-authenticate', `Bearer error="insufficient_scope", scope="${scope}"`).send({ error: 'insufficient_scope' })
  }
  if (typeof payload.exp === 'number') {
    if (cache.size >= MAX_CACHE) cache.delete(cache.keys().next().value!)
    cache.set(token, payload.exp * 1000)
  }
})

await app.register(fastifyHttpProxy, { upstream: env('UPSTREAM') })
await app.listen({ port: Number(env('PORT')), host: '127.0.0.1' })
process.on('SIGTERM', () => { process.exit(0) })
