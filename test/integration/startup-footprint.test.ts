/**
 * What a gateway loads at startup. ioredis added ~11 MB of RSS (5 MB of heap) to every
 * gateway when it was imported statically (BENCHMARKS.md, idle streams): now it is loaded
 * only when the config has a `redis:` section. Real gateways, a real redis-server.
 */
import { createRequire } from 'node:module'
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'

const requireCache = createRequire(import.meta.url).cache
const ioredisLoaded = (): boolean => Object.keys(requireCache).some((path) => path.includes('/node_modules/ioredis/'))
const routes = [{ path: '/mcp', upstream: 'http://127.0.0.1:9/mcp', scopes: ['mcp:tools'] }]
const authorizationServers = [{ issuer: 'http://127.0.0.1:9/never' }]

t.test('a gateway without a redis section does not load ioredis; one with it does, and connects', async (t) => {
  t.equal(ioredisLoaded(), false, 'not loaded before any gateway')
  const plain = await startGateway(() => ({ authorizationServers, routes }), { waitReady: false })
  t.teardown(async () => { await plain.close() })
  t.equal(plain.gateway.redis, undefined, 'no Redis client without a redis section')
  t.equal(ioredisLoaded(), false, 'not loaded by a gateway without a redis section')

  const redis = await startRedis()
  t.teardown(async () => { await redis.close() })
  const withRedis = await startGateway(() => ({
    authorizationServers,
    routes,
    redis: { url: redis.url, keyPrefix: 'footprint:' },
    sessions: { store: 'redis' }
  }), { waitReady: false })
  t.teardown(async () => { await withRedis.close() })
  t.equal(ioredisLoaded(), true, 'loaded once a redis section asks for it')
  const client = withRedis.gateway.redis
  t.ok(client !== undefined, 'the gateway has its Redis client')
  for (let i = 0; i < 50 && client?.status !== 'ready'; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(client?.status, 'ready', 'and it connects to the real redis-server')
  t.equal(await client?.ping(), 'PONG', 'and answers')
})
