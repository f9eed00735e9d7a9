/**
 * The bare upstream every proxy forwards to: a minimal Fastify server.
 *
 * - POST (any path): a fixed ~300-byte JSON-RPC tools/call result.
 * - GET (any path): an SSE stream that sends one comment and then stays idle
 *   (no timers, no keep-alives): what N idle streams cost is the proxy's.
 *
 * PORT from the environment; listens on 127.0.0.1 only.
 */
import Fastify from 'fastify'
import { responseBody } from './response-body.js'

const port = Number(process.env.PORT)
const body = responseBody()
const app = Fastify({ logger: false, keepAliveTimeout: 72_000 })

// Bodies are not parsed: the answer is fixed.
app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, b, done) => { done(null, b) })

app.post('/*', (_req, reply) => {
  void reply.header('content-type', 'application/json').send(body)
})
app.get('/*', (req, reply) => {
  reply.hijack()
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  reply.raw.write(': open\n\n')
  req.raw.socket.setTimeout(0)
})

await app.listen({ host: '127.0.0.1', port })
process.on('SIGTERM', () => { process.exit(0) })
