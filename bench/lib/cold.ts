/**
 * Cold tokens. Two extra gateway processes (cold-a, cold-b), each with its own
 * JWKS path on the harness's JWKS server so their fetches are counted apart:
 *
 * - just started: the first request a fresh gateway serves (a never-seen
 *   token; the keys were loaded at startup); then, after warm-up requests, the
 *   same token warm and never-seen tokens one by one (a full RS256 verify
 *   each) in the warmed process; and a burst of concurrent never-seen tokens
 *   at a second fresh gateway; JWKS fetches counted throughout;
 * - key rotation: a token signed by a key the gateway has never seen makes it
 *   refetch the JWKS. A single such request (latency includes the fetch) on
 *   cold-a, and a burst of concurrent ones on cold-b, which must share one fetch.
 *   jose refetches on an unknown kid only after a cooldown (30 s after the
 *   previous fetch), so this part waits for it, or is skipped in smoke mode.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { keepAliveAgent, timedRequest } from './http.js'
import { median, percentile } from './stats.js'
import { makeKey, signToken, type BenchKey, type JwksServer } from './tokens.js'

/** jose's default cooldown between kid-miss refetches (the gateway's DEFAULT_JWKS_COOLDOWN_MS), plus a margin. */
export const KID_MISS_COOLDOWN_MS = 30_000 + 2_000

export interface ColdGateway { name: string, origin: string, readyAt: number }

export interface ColdStartResult {
  jwksFetchesAtReady: number
  firstRequest: { status: number, ms: number }
  /** Requests with the first token between the first request and the warm figure. */
  warmupRequests: number
  warm: { n: number, medianMs: number, statuses: Record<string, number> }
  neverSeenSequential: { n: number, medianMs: number, statuses: Record<string, number> }
  concurrent: { n: number, statuses: Record<string, number>, p50Ms: number, maxMs: number, jwksFetchesDuring: number }
  jwksFetchesTotal: number
}

export interface RotationResult {
  status: 'ok' | 'skipped' | 'failed'
  reason?: string
  single?: { status: number, ms: number, jwksFetchesDuring: number, warmMedianMs: number }
  concurrent?: { n: number, statuses: Record<string, number>, p50Ms: number, maxMs: number, jwksFetchesDuring: number }
}

const count = (xs: number[]): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const x of xs) out[String(x)] = (out[String(x)] ?? 0) + 1
  return out
}

export interface ColdDeps {
  jwks: JwksServer
  key: BenchKey
  body: string
  headers: (token: string) => Record<string, string>
}

async function burst (url: string, d: ColdDeps, tokens: string[]): Promise<{ statuses: number[], ms: number[] }> {
  const agent = keepAliveAgent(tokens.length)
  try {
    const res = await Promise.all(tokens.map(async (t) => await timedRequest(url, { headers: d.headers(t), body: d.body, agent })))
    return { statuses: res.map((r) => r.status), ms: res.map((r) => r.ms) }
  } finally {
    agent.destroy()
  }
}

export async function coldStart (gwA: ColdGateway, gwB: ColdGateway, d: ColdDeps, o: { sequential: number, concurrent: number, warmup: number }): Promise<ColdStartResult> {
  const urlA = `${gwA.origin}/mcp`
  const jwksFetchesAtReady = d.jwks.fetches(gwA.name)
  const first = await signToken(d.key, d.jwks.issuer)
  const r1 = await timedRequest(urlA, { headers: d.headers(first), body: d.body })
  const agent = keepAliveAgent(4)
  const warm: number[] = []
  const warmStatus: number[] = []
  const fresh: number[] = []
  const freshStatus: number[] = []
  try {
    // Warm the process (JIT, pools) with the now-cached token, so that warm and never-seen compare the token alone.
    for (let i = 0; i < o.warmup; i++) await timedRequest(urlA, { headers: d.headers(first), body: d.body, agent })
    for (let i = 0; i < o.sequential; i++) {
      const r = await timedRequest(urlA, { headers: d.headers(first), body: d.body, agent })
      warm.push(r.ms); warmStatus.push(r.status)
    }
    const tokens = await Promise.all(Array.from({ length: o.sequential }, async () => await signToken(d.key, d.jwks.issuer)))
    for (const t of tokens) {
      const r = await timedRequest(urlA, { headers: d.headers(t), body: d.body, agent })
      fresh.push(r.ms); freshStatus.push(r.status)
    }
  } finally {
    agent.destroy()
  }
  // The burst goes to cold-b, which has served nothing yet.
  const burstTokens = await Promise.all(Array.from({ length: o.concurrent }, async () => await signToken(d.key, d.jwks.issuer)))
  const f0 = d.jwks.fetches(gwB.name)
  const b = await burst(`${gwB.origin}/mcp`, d, burstTokens)
  return {
    jwksFetchesAtReady,
    firstRequest: { status: r1.status, ms: r1.ms },
    warmupRequests: o.warmup,
    warm: { n: warm.length, medianMs: median(warm), statuses: count(warmStatus) },
    neverSeenSequential: { n: fresh.length, medianMs: median(fresh), statuses: count(freshStatus) },
    concurrent: { n: o.concurrent, statuses: count(b.statuses), p50Ms: percentile(b.ms, 50), maxMs: Math.max(...b.ms), jwksFetchesDuring: d.jwks.fetches(gwB.name) - f0 },
    jwksFetchesTotal: d.jwks.fetches(gwA.name)
  }
}

/** Waits (bounded by maxWaitMs) until both gateways are past the kid-miss cooldown. */
export async function rotation (gwA: ColdGateway, gwB: ColdGateway, d: ColdDeps, o: { concurrent: number, maxWaitMs: number, lastFetchAt: () => number, log: (l: string) => void }): Promise<RotationResult> {
  const wait = o.lastFetchAt() + KID_MISS_COOLDOWN_MS - Date.now()
  if (wait > o.maxWaitMs) {
    return { status: 'skipped', reason: `a kid-miss refetch needs the JWKS cooldown (30 s) to have passed; ${Math.ceil(wait / 1000)} s left and the wait is capped at ${Math.round(o.maxWaitMs / 1000)} s in this mode` }
  }
  if (wait > 0) {
    o.log(`cold token: waiting ${Math.ceil(wait / 1000)} s for the gateways' JWKS cooldown`)
    await sleep(wait)
  }
  // cold-a: one request with a token from a new key.
  const k2 = await makeKey()
  d.jwks.setKeys(gwA.name, [d.key, k2])
  const t2 = await signToken(k2, d.jwks.issuer)
  const fa = d.jwks.fetches(gwA.name)
  const r = await timedRequest(`${gwA.origin}/mcp`, { headers: d.headers(t2), body: d.body })
  const fetchesA = d.jwks.fetches(gwA.name) - fa
  const agent = keepAliveAgent(2)
  const warm: number[] = []
  try {
    for (let i = 0; i < 20; i++) warm.push((await timedRequest(`${gwA.origin}/mcp`, { headers: d.headers(t2), body: d.body, agent })).ms)
  } finally {
    agent.destroy()
  }
  // cold-b: a burst of distinct tokens from another new key.
  const k3 = await makeKey()
  d.jwks.setKeys(gwB.name, [d.key, k3])
  const tokens = await Promise.all(Array.from({ length: o.concurrent }, async () => await signToken(k3, d.jwks.issuer)))
  const fb = d.jwks.fetches(gwB.name)
  const b = await burst(`${gwB.origin}/mcp`, d, tokens)
  return {
    status: 'ok',
    single: { status: r.status, ms: r.ms, jwksFetchesDuring: fetchesA, warmMedianMs: median(warm) },
    concurrent: { n: o.concurrent, statuses: count(b.statuses), p50Ms: percentile(b.ms, 50), maxMs: Math.max(...b.ms), jwksFetchesDuring: d.jwks.fetches(gwB.name) - fb }
  }
}
