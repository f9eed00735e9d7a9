/**
 * What the identity assertion costs per forwarded request: signing one with
 * jose (the gateway's code path, src/identity/assertion.ts) per algorithm,
 * and a reused one (the default). CPU µs per operation in this process.
 *
 *   npx tsx bench/assertion.ts [--n 20000]
 *
 * A reference point: a whole proxied request costs the gateway ~110–135 µs of
 * CPU (bench/results/latest.md), so a signature per request is about as much
 * again, and a reused assertion is nothing.
 */
import { parseArgs } from 'node:util'
import type { Principal } from '../src/auth/principal.js'
import { generateSigningKey, signingKeysFrom } from '../src/identity/keys.js'
import { assertionClaims, createAssertionIssuer, signAssertion } from '../src/identity/assertion.js'
import type { IdentityAssertionConfig } from '../src/config/types.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' } } })
const N = Number(values.n)
const CFG: IdentityAssertionConfig = { audience: 'https://upstream.example.com', ttlSeconds: 30, header: 'x-gateway-assertion', reuse: true }
const principal: Principal = {
  subject: 'alice', clientId: 'app-1', issuer: 'https://as.example.com', scopes: new Set(['mcp:tools']), scopeString: 'mcp:tools mcp:read',
  roles: new Set(), roleString: '', claims: {}, expiresAtMs: Date.now() + 3_600_000
}

async function measure (label: string, n: number, concurrency: number, op: () => unknown): Promise<string> {
  for (let i = 0; i < Math.min(n, 2000); i++) await op()
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i += concurrency) await Promise.all(Array.from({ length: concurrency }, op))
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000 / n
  const cpu = process.cpuUsage(cpu0)
  return `| ${label} | ${concurrency} | ${((cpu.user + cpu.system) / n).toFixed(1)} | ${wallUs.toFixed(1)} |`
}

const rows: string[] = []
for (const alg of ['ES256', 'EdDSA', 'RS256', 'PS256']) {
  const keys = signingKeysFrom(alg, [generateSigningKey(alg)], true)
  const n = alg.startsWith('RS') || alg.startsWith('PS') ? Math.ceil(N / 4) : N
  const sign = async (): Promise<string> => await signAssertion(assertionClaims(principal, CFG, 'https://gw.example.com', Date.now()), keys)
  rows.push(await measure(`sign ${alg} (reuse: false)`, n, 1, sign))
  rows.push(await measure(`sign ${alg} (reuse: false)`, n, 10, sign))
}
const keys = signingKeysFrom('ES256', [generateSigningKey('ES256')], true)
const issuer = createAssertionIssuer(CFG, keys, 'https://gw.example.com')
await issuer.get(principal, Date.now())
rows.push(await measure('reused ES256 assertion (reuse: true, the default)', N * 10, 1, () => issuer.get(principal, Date.now())))

console.log(`node ${process.version}, ${N} operations per row\n`)
console.log('| operation | concurrent | CPU µs/op | wall µs/op |')
console.log('|---|---|---|---|')
for (const r of rows) console.log(r)
