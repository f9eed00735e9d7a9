/**
 * `npm run demo` as a newcomer uses it: start it, copy the printed curl
 * commands into a shell, and get tools/list and a tool call through the gateway.
 */
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { resolve } from 'node:path'
import t from 'tap'
import { freePort } from '../helpers/net.js'

const ROOT = resolve(import.meta.dirname, '../..')
const sh = promisify(execFile)

t.test('the demo starts and its printed commands call tools through the gateway', async (t) => {
  const gatewayPort = await freePort()
  const asPort = await freePort()
  const child = spawn('npm', ['run', '--silent', 'demo'], {
    cwd: ROOT,
    env: { ...process.env, DEMO_GATEWAY_PORT: String(gatewayPort), DEMO_AS_PORT: String(asPort), DEMO_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', () => { /* oidc-provider development warnings */ })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch { /* already gone */ } })

  const deadline = Date.now() + 60_000
  while (!out.includes('Ctrl-C stops the demo.') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(out, new RegExp(`MCP URL \\(protected\\): +http://127\\.0\\.0\\.1:${gatewayPort}/mcp`), 'prints the MCP URL')
  t.match(out, /npx @modelcontextprotocol\/inspector/, 'prints the Inspector command')

  // Exactly the lines a user would paste: token, session, tools/list, tools/call.
  const commands = out.split('\n').filter((l) => /^(TOKEN=|SID=|curl -s -H)/.test(l))
  t.equal(commands.length, 4, 'four commands printed')
  const script = commands.map((c, i) => (i >= 2 ? `${c}; echo; echo "----"` : c)).join('\n')
  const { stdout } = await sh('bash', ['-c', `set -e\n${script}`], { timeout: 30_000 })
  const [toolsList, toolCall] = stdout.split('----')
  t.match(toolsList, /"name":"echo"/, 'tools/list through the gateway lists the echo tool')
  t.match(toolCall, /Echo: hello through the gateway/, 'tools/call through the gateway ran the tool')

  const challenge = out.split('\n').find((l) => l.startsWith('curl -si -X POST'))!
  const res = await sh('bash', ['-c', challenge], { timeout: 10_000 })
  t.match(res.stdout, /^HTTP\/1\.1 401/m, 'without a token: 401')
  t.match(res.stdout, new RegExp(`www-authenticate: Bearer scope="mcp:tools", resource_metadata="http://127\\.0\\.0\\.1:${gatewayPort}/\\.well-known/oauth-protected-resource/mcp"`, 'i'))

  process.kill(-child.pid!, 'SIGINT')
  const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => { resolve('timeout') }, 10_000))])
  t.not(code, 'timeout', 'the demo stops on Ctrl-C')
})
