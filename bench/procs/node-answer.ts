/**
 * System `node-answer` (in the default run): one Node HTTP leg and nothing else. A
 * `node:http` server reads the POST body and answers the bare upstream's
 * ~300-byte result itself: no upstream, no token check, no logs.
 *
 * Why: every Node proxy pays this leg once towards the client, plus a client
 * leg towards the upstream. Measured in the same rounds as nginx and HAProxy,
 * it shows what the Node runtime alone costs per request before any proxying
 * or authentication (BENCHMARKS.md).
 *
 * Environment: PORT.
 */
import { createServer } from 'node:http'
import { requiredEnv } from './env.js'
import { responseBody } from './response-body.js'

const body = responseBody()
const headers = ['content-type', 'application/json', 'content-length', String(body.length)]

const server = createServer({ keepAlive: true }, (req, res) => {
  req.on('data', () => {})
  req.on('end', () => {
    res.writeHead(200, headers)
    res.end(body)
  })
})
server.listen(Number(requiredEnv('PORT')), '127.0.0.1')
process.on('SIGTERM', () => { process.exit(0) })
