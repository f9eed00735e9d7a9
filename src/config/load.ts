/**
 * read → YAML → ${ENV} substitution → validate (every problem) → normalise → freeze.
 *
 * This layer is the only reader of `process.env` in the gateway; callers may
 * pass an explicit environment for tests.
 */
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, resolve, dirname } from 'node:path'
import { createSecureContext } from 'node:tls'
import { LineCounter, parseDocument } from 'yaml'
import { z } from 'zod'
import { ConfigError } from '../errors.js'
import { configSchema, isLoopbackHost, type RawAuthorizationServer, type RawConfig, type RawSecretRef } from './schema.js'
import { PROFILES } from './profiles.js'
import * as D from './defaults.js'
import { normaliseEdge, routeOrigins } from './edge.js'
import { normaliseSessions } from './sessions.js'
import { normaliseObservability, observabilityPathClashes } from './observability.js'
import type { AudienceRule, ClaimPath, GatewayConfig, IntrospectionConfig, IssuerConfig, PolicyConfig, RouteConfig } from './types.js'
import { gatewayHeaderClashes, normaliseIdentityAssertion, normaliseSigning, normaliseUpstreamAuth, type IdentityContext } from './upstream-identity.js'

export type Env = Readonly<Record<string, string | undefined>>

/** The process environment. Exported so that nothing outside config touches `process.env`. */
export function processEnv (): Env {
  return process.env
}

/** The config path: `--config` wins, then env `MCP_GATEWAY_CONFIG`, then ./gateway.yaml. */
export function resolveConfigPath (cliPath: string | undefined, env: Env = process.env): string {
  const fromEnv = env.MCP_GATEWAY_CONFIG
  return cliPath ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : D.DEFAULT_CONFIG_PATH)
}

/** Load, validate and normalise a config file. Throws {@link ConfigError} listing every problem. */
export function loadConfigFile (path: string, env: Env = process.env): GatewayConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error'
    throw new ConfigError([`${path}: cannot read the config file (${code}): the file must exist and be readable`])
  }
  return parseConfig(text, { env, baseDir: dirname(resolve(path)) })
}

/** Parse and validate config text. `baseDir` resolves relative file paths (TLS). */
export function parseConfig (text: string, opts: { env?: Env, baseDir?: string } = {}): GatewayConfig {
  const env = opts.env ?? process.env
  const baseDir = opts.baseDir ?? process.cwd()
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter })
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => {
      const pos = lineCounter.linePos(e.pos[0])
      return `line ${pos.line} column ${pos.col}: invalid YAML (${e.code}): the file must be valid YAML`
    }))
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 })
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(['(root): not a mapping: the config file must be a YAML mapping of settings'])
  }
  const problems: string[] = []
  const substituted = substituteEnv(raw, env, [], problems)
  const parsed = configSchema.safeParse(substituted)
  if (!parsed.success) problems.push(...formatIssues(parsed.error.issues, substituted))
  problems.push(...crossChecks(substituted))
  if (problems.length > 0 || !parsed.success) throw new ConfigError(dedupe(problems))
  return normalise(parsed.data, baseDir, env)
}

function dedupe (list: string[]): string[] {
  return [...new Set(list)]
}

/** Format a path the way users write it: routes[0].upstream */
export function formatPath (path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else if (p === '') out += '[""]'
    else out += out === '' ? String(p) : `.${String(p)}`
  }
  return out === '' ? '(root)' : out
}

const ENV_RE = /\$\$\{|\$\{([^}]*)(\}|$)/g
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

const WHOLE_ENV_RE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$/
const SCALAR_RE = /^(?:-?\d+(?:\.\d+)?|true|false)$/

/**
 * Replace `${NAME}` in every string (after YAML parsing, so values cannot inject
 * YAML structure). `$${` is a literal `${`. A value that is exactly one
 * `${NAME}` whose value is a number or true/false takes that type, so
 * `port: ${PORT}` works.
 */
function substituteEnv (value: unknown, env: Env, path: PropertyKey[], problems: string[]): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value
    const whole = WHOLE_ENV_RE.exec(value)
    const wholeValue = whole === null ? undefined : env[whole[1]!]
    if (wholeValue !== undefined && SCALAR_RE.test(wholeValue)) {
      return wholeValue === 'true' ? true : wholeValue === 'false' ? false : Number(wholeValue)
    }
    return value.replace(ENV_RE, (match, name: string | undefined, close: string | undefined) => {
      if (match === '$${') return '${'
      if (name === undefined || close !== '}' || !ENV_NAME_RE.test(name)) {
        problems.push(`${formatPath(path)}: invalid variable reference: use \${NAME} with letters, digits and underscores`)
        return ''
      }
      const v = env[name]
      if (v === undefined) {
        problems.push(`${formatPath(path)}: environment variable ${name} is not set: every \${NAME} must be set`)
        return ''
      }
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, i], problems))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, [...path, k], problems)
    return out
  }
  return value
}

function typeName (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  return `a ${typeof v}`
}

function valueAt (root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = root
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<PropertyKey, unknown>)[p]
  }
  return cur
}

/** Allowed keys of the strict object at `path`, by walking the schema. */
function allowedKeysAt (path: ReadonlyArray<PropertyKey>): string[] {
  let s: z.ZodType = configSchema
  for (const p of path) {
    s = unwrap(s)
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodType>)[String(p)] ?? s
    else if (s instanceof z.ZodArray) s = s.element as z.ZodType
    else if (s instanceof z.ZodRecord) s = s.valueType as z.ZodType
  }
  s = unwrap(s)
  return s instanceof z.ZodObject ? Object.keys(s.shape) : []
}

function unwrap (s: z.ZodType): z.ZodType {
  let cur = s
  while (cur instanceof z.ZodOptional || cur instanceof z.ZodDefault) cur = cur.unwrap() as z.ZodType
  // A union with one mapping branch (audit.destination): the mapping's keys are the allowed ones.
  if (cur instanceof z.ZodUnion) {
    const objects = (cur.options as z.ZodType[]).filter((o) => o instanceof z.ZodObject)
    if (objects.length === 1) return objects[0]!
  }
  return cur
}

const TYPE_RULES: Record<string, string> = {
  string: 'must be a string',
  number: 'must be a number',
  boolean: 'must be true or false',
  object: 'must be a mapping of keys to values',
  array: 'must be a list'
}

/** Turn zod issues into `path: what is wrong: the rule`. Values are not echoed: they may be secrets. */
function formatIssues (issues: readonly z.core.$ZodIssue[], root?: unknown, prefix: PropertyKey[] = []): string[] {
  const out: string[] = []
  for (const issue of issues) {
    const path = [...prefix, ...issue.path]
    const where = formatPath(path)
    switch (issue.code) {
      case 'unrecognized_keys': {
        const allowed = allowedKeysAt(path)
        for (const key of issue.keys) {
          out.push(`${formatPath([...path, key])}: unknown key: allowed keys here are ${allowed.join(', ')}`)
        }
        break
      }
      case 'invalid_type': {
        const got = valueAt(root, path)
        if (root !== undefined && got === undefined) out.push(`${where}: missing: this key is required`)
        // zod 4 reports .int() failures as invalid_type with expected "int"; the schema's own message says it better.
        else if (issue.expected === 'int') out.push(`${where}: ${issue.message.startsWith('Invalid input') ? 'not an integer: must be an integer' : issue.message}`)
        else out.push(`${where}: got ${root === undefined ? 'a wrong type' : typeName(got)}: ${TYPE_RULES[issue.expected] ?? `must be ${issue.expected}`}`)
        break
      }
      case 'invalid_value':
        // zod's own "Invalid option: …" is replaced; schema messages ("what: rule") are kept.
        out.push(`${where}: ${issue.message.includes(': ') && !issue.message.startsWith('Invalid option') ? issue.message : `unsupported value: must be one of ${issue.values.map((v) => String(v)).join(', ')}`}`)
        break
      case 'invalid_key':
        // A record key (a header name) failed its own rule: report the rule at the key's path.
        for (const inner of issue.issues) out.push(`${where}: ${inner.message}`)
        break
      case 'invalid_union': {
        const last = path[path.length - 1]
        const got = valueAt(root, path)
        if (last === 'destination' && got !== null && typeof got === 'object' && !Array.isArray(got)) {
          // audit.destination as a mapping: the `{ file }` branch's own problems say more than the union rule.
          const branch = issue.errors.find((e) => e.length > 0 && e.every((i) => i.path.length > 0 || i.code === 'unrecognized_keys'))
          if (branch !== undefined) {
            out.push(...formatIssues(branch, root, path))
            break
          }
        }
        const rule = last === 'mirrorAuthorizationServerMetadata'
          ? 'must be true, false or an issuer URL'
          : last === 'trustProxy' ? 'must be false, true, a number of proxy hops or a list of CIDR ranges'
          : last === 'destination' ? 'must be stdout, stderr or a mapping { file: <path> }'
          : path.includes('requiredClaims') ? 'must be a string, a number or true/false' : 'must be a string or a list of strings'
        out.push(`${where}: got ${typeName(valueAt(root, path))}: ${rule}`)
        break
      }
      default:
        // custom / too_small / too_big / invalid_format: our messages are already "what: rule".
        out.push(`${where}: ${issue.message.includes(': ') ? issue.message : `invalid value: ${issue.message}`}`)
    }
  }
  return out
}

/**
 * Checks across entries that a per-field schema cannot express. They run on the
 * raw document too, so they are reported together with schema problems.
 */
function crossChecks (raw: unknown): string[] {
  const problems: string[] = []
  const routes = valueAt(raw, ['routes'])
  if (Array.isArray(routes)) {
    const paths: Array<[number, string]> = []
    routes.forEach((r, i) => {
      const p = valueAt(r, ['path'])
      if (typeof p === 'string') paths.push([i, p])
    })
    for (let a = 0; a < paths.length; a++) {
      for (let b = a + 1; b < paths.length; b++) {
        const [ia, pa] = paths[a]!
        const [ib, pb] = paths[b]!
        if (pa === pb) {
          problems.push(`routes[${ib}].path: duplicate of routes[${ia}].path: route paths must be unique`)
        } else if (pb.startsWith(pa + '/') || pa.startsWith(pb + '/')) {
          problems.push(`routes[${ib}].path: overlaps routes[${ia}].path: a route path must not be a prefix of another`)
        }
      }
    }
  }
  const issuers = valueAt(raw, ['authorizationServers'])
  if (Array.isArray(issuers)) {
    const seen = new Map<string, number>()
    issuers.forEach((as, i) => {
      const iss = valueAt(as, ['issuer'])
      if (typeof iss !== 'string') return
      const prev = seen.get(iss)
      if (prev !== undefined) problems.push(`authorizationServers[${i}].issuer: duplicate of authorizationServers[${prev}].issuer: each issuer may appear once`)
      else seen.set(iss, i)
    })
    issuers.forEach((as, i) => { problems.push(...keyChecks(as, `authorizationServers[${i}]`)) })
  }
  problems.push(...observabilityPathClashes(raw))
  return problems
}

const SYMMETRIC = new Set<string>(D.SYMMETRIC_ALGORITHMS)

/** Symmetric and asymmetric keys never mix: that is the HS/RS key-confusion attack (RFC 8725 §2.1). */
function keyChecks (as: unknown, where: string): string[] {
  const out: string[] = []
  const algs = valueAt(as, ['algorithms'])
  const list = Array.isArray(algs) ? algs.filter((a): a is string => typeof a === 'string') : []
  const hasSecret = valueAt(as, ['sharedSecret']) !== undefined
  if (hasSecret) {
    if (list.some((a) => !SYMMETRIC.has(a))) out.push(`${where}.algorithms: asymmetric algorithm with sharedSecret: an issuer with a shared secret accepts only ${D.SYMMETRIC_ALGORITHMS.join(', ')}`)
    if (valueAt(as, ['jwksUri']) !== undefined || valueAt(as, ['metadataUrl']) !== undefined) {
      out.push(`${where}.sharedSecret: set together with jwksUri or metadataUrl: a shared-secret issuer has no key set; remove one`)
    }
  } else if (list.some((a) => SYMMETRIC.has(a))) {
    out.push(`${where}.algorithms: HS* without sharedSecret: symmetric algorithms need sharedSecret, and an issuer with public keys never accepts them`)
  }
  return out
}

function stripTrailingSlash (s: string): string {
  return s.endsWith('/') ? s.slice(0, -1) : s
}

function readPem (file: string, baseDir: string, where: string, problems: string[]): Buffer {
  const p = isAbsolute(file) ? file : resolve(baseDir, file)
  try {
    return readFileSync(p)
  } catch (err) {
    problems.push(`${where}: cannot read ${p} (${(err as NodeJS.ErrnoException).code ?? 'error'}): the file must exist and be readable`)
    return Buffer.alloc(0)
  }
}

function normalise (raw: RawConfig, baseDir: string, env: Env): GatewayConfig {
  const warnings: string[] = []
  const problems: string[] = []
  const publicUrl = new URL(raw.publicUrl).origin
  if (publicUrl.startsWith('http:') && !isLoopbackHost(new URL(publicUrl).hostname)) {
    warnings.push(`publicUrl is plain http on a non-loopback host: MCP clients expect https (terminate TLS here with listen.tls or in front of the gateway)`)
  }
  const edge = normaliseEdge(raw, publicUrl, warnings, problems)
  const sessions = normaliseSessions(raw, warnings, problems, (ref, where) => resolveSecret(ref, where, { baseDir, env, warnings, problems }))

  const authorizationServers: IssuerConfig[] = raw.authorizationServers.map((as, i) =>
    normaliseIssuer(as, `authorizationServers[${i}]`, { baseDir, env, warnings, problems }))
  const byIssuer = new Map(authorizationServers.map((a) => [a.issuer, a]))
  const idCtx: IdentityContext = { baseDir, warnings, problems, resolveSecret: (ref, where) => resolveSecret(ref, where, { baseDir, env, warnings, problems }) }

  const routes: RouteConfig[] = raw.routes.map((r, i) => {
    const up = new URL(r.upstream)
    if (up.protocol === 'http:' && !isLoopbackHost(up.hostname)) {
      warnings.push(`routes[${i}].upstream uses plain http on a non-loopback host: traffic to the upstream, including identity headers, is unencrypted`)
    }
    const resource = r.resource ?? publicUrl + r.path
    const identityHeaders = Object.freeze({ ...D.DEFAULT_IDENTITY_HEADERS, ...stripUndefined(r.identityHeaders ?? {}) })
    const claimHeaders = Object.freeze(Object.entries(r.claims ?? {}).map(([h, c]) => Object.freeze([h, Object.freeze(c.split('.'))] as const)))
    return Object.freeze({
      id: r.path,
      path: r.path,
      upstreamOrigin: up.origin,
      upstreamPath: stripTrailingSlash(up.pathname),
      resource,
      resourceMetadataUrl: `${publicUrl}/.well-known/oauth-protected-resource${r.path}`,
      scopes: Object.freeze([...new Set(r.scopes ?? [])]),
      issuers: routeIssuers(r.issuers, byIssuer, `routes[${i}].issuers`, problems),
      policy: r.policy === undefined ? undefined : normalisePolicy(r.policy),
      identityHeaders,
      claimHeaders,
      identityAssertion: normaliseIdentityAssertion(r.identityAssertion, up.origin),
      upstreamAuth: normaliseUpstreamAuth(r.upstreamAuth, `routes[${i}].upstreamAuth`, idCtx),
      allowedOrigins: routeOrigins(r.allowedOrigins, edge.allowedOrigins, `routes[${i}]`, warnings),
      timeouts: Object.freeze({
        connectMs: (r.timeouts?.connectSeconds ?? D.DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECONDS) * 1000,
        headersMs: (r.timeouts?.headersSeconds ?? D.DEFAULT_UPSTREAM_HEADERS_TIMEOUT_SECONDS) * 1000,
        idleMs: (r.timeouts?.idleSeconds ?? D.DEFAULT_UPSTREAM_IDLE_TIMEOUT_SECONDS) * 1000
      })
    })
  })
  routes.forEach((r, i) => {
    if (r.scopes.length === 0) warnings.push(`routes[${i}] (${r.path}) requires no scopes: any valid token for its resource is accepted`)
    const identity = [r.identityHeaders.subject, r.identityHeaders.clientId, r.identityHeaders.scopes, r.identityHeaders.issuer, r.identityHeaders.roles].map((h) => h.toLowerCase())
    const claims = r.claimHeaders.map(([h]) => h.toLowerCase())
    if (new Set(claims).size !== claims.length) {
      problems.push(`routes[${i}].claims: two claim headers differ only in case: header names are case-insensitive, so each must be distinct`)
    }
    if (new Set(identity).size !== identity.length) {
      problems.push(`routes[${i}].identityHeaders: a header name is used twice: each identity header needs its own name`)
    }
    if (claims.some((h) => identity.includes(h))) {
      problems.push(`routes[${i}].claims: a claim header has the name of an identity header: identity and claim header names must be distinct`)
    }
    problems.push(...gatewayHeaderClashes(r, identity, claims, i))
  })
  const signing = normaliseSigning(raw, routes, idCtx)

  let tls: GatewayConfig['listen']['tls']
  if (raw.listen?.tls !== undefined) {
    tls = Object.freeze({
      cert: readPem(raw.listen.tls.certFile, baseDir, 'listen.tls.certFile', problems),
      key: readPem(raw.listen.tls.keyFile, baseDir, 'listen.tls.keyFile', problems)
    })
  }
  if (tls !== undefined && tls.cert.length > 0 && tls.key.length > 0) {
    try {
      // Parse the PEM now, so --check catches a bad certificate or a key that does not match it.
      createSecureContext({ cert: tls.cert, key: tls.key })
    } catch (err) {
      problems.push(`listen.tls: the certificate and key cannot be used (${(err as { code?: string }).code ?? 'invalid PEM'}): certFile must be a PEM certificate chain and keyFile its matching PEM private key`)
    }
  }
  let mirrorIssuer: string | undefined
  const mirror = raw.mirrorAuthorizationServerMetadata
  if (mirror === true) {
    if (authorizationServers.length === 1) mirrorIssuer = authorizationServers[0]!.issuer
    else problems.push('mirrorAuthorizationServerMetadata: true with several authorization servers: give the issuer URL whose metadata to mirror')
  } else if (typeof mirror === 'string') {
    if (byIssuer.has(mirror)) mirrorIssuer = mirror
    else problems.push('mirrorAuthorizationServerMetadata: not a configured issuer: must be true, false or one of authorizationServers[].issuer')
  }
  if (mirrorIssuer !== undefined && byIssuer.get(mirrorIssuer)!.sharedSecret !== undefined) {
    problems.push('mirrorAuthorizationServerMetadata: the issuer uses a shared secret and has no metadata: mirror an issuer that is discovered')
  }

  const host = raw.listen?.host ?? D.DEFAULT_LISTEN_HOST
  if (!isLoopbackHost(host) && tls === undefined && publicUrl.startsWith('https:')) {
    warnings.push(`listen.host ${host} is not loopback and listen.tls is not set: make sure TLS is terminated in front of the gateway`)
  }
  const observability = normaliseObservability(raw, { baseDir, listenHost: host, listenPort: raw.listen?.port ?? D.DEFAULT_LISTEN_PORT, warnings, problems })

  if (problems.length > 0) throw new ConfigError(problems)

  return Object.freeze({
    listen: Object.freeze({ host, port: raw.listen?.port ?? D.DEFAULT_LISTEN_PORT, tls }),
    publicUrl,
    authorizationServers: Object.freeze(authorizationServers),
    routes: Object.freeze(routes),
    limits: Object.freeze({
      maxBodyBytes: raw.limits?.maxBodyBytes ?? D.DEFAULT_MAX_BODY_BYTES,
      maxBatchMessages: raw.limits?.maxBatchMessages ?? D.DEFAULT_MAX_BATCH_MESSAGES,
      maxTokenBytes: raw.limits?.maxTokenBytes ?? D.DEFAULT_MAX_TOKEN_BYTES,
      ...edge.limits
    }),
    trustProxy: edge.trustProxy,
    rateLimits: edge.rateLimits,
    sessions: sessions.sessions,
    redis: sessions.redis,
    ...observability,
    tokenCache: Object.freeze({ maxEntries: raw.tokenCache?.maxEntries ?? D.DEFAULT_TOKEN_CACHE_MAX_ENTRIES }),
    mirrorAuthorizationServerMetadata: mirrorIssuer,
    logLevel: raw.logLevel ?? D.DEFAULT_LOG_LEVEL,
    shutdownTimeoutMs: (raw.shutdownTimeoutSeconds ?? D.DEFAULT_SHUTDOWN_TIMEOUT_SECONDS) * 1000,
    signing,
    warnings: Object.freeze(warnings)
  })
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

interface NormaliseContext {
  readonly baseDir: string
  readonly env: Env
  readonly warnings: string[]
  readonly problems: string[]
}

/** Resolve `{ fromEnv }` / `{ fromFile }`. The value itself never appears in a message. */
function resolveSecret (ref: RawSecretRef, where: string, ctx: NormaliseContext): string {
  if (ref.fromEnv !== undefined) {
    const v = ctx.env[ref.fromEnv]
    if (v === undefined || v === '') {
      ctx.problems.push(`${where}.fromEnv: environment variable ${ref.fromEnv} is not set or empty: the secret must be provided`)
      return ''
    }
    return v
  }
  const file = isAbsolute(ref.fromFile!) ? ref.fromFile! : resolve(ctx.baseDir, ref.fromFile!)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    ctx.problems.push(`${where}.fromFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): the file must exist and be readable`)
    return ''
  }
  try {
    // Secrets readable by group/others leak to every local account.
    if ((statSync(file).mode & 0o077) !== 0) ctx.warnings.push(`${where}.fromFile: ${file} is readable by group or others: restrict it to mode 0600`)
  } catch { /* already read: a stat failure changes nothing */ }
  const value = text.replace(/\r?\n$/, '')
  if (value === '') ctx.problems.push(`${where}.fromFile: ${file} is empty: the file must hold the secret`)
  return value
}

function paths (list: readonly string[]): readonly ClaimPath[] {
  return Object.freeze(list.map((p) => Object.freeze(p.split('.'))))
}

function asList (v: string | readonly string[] | undefined, fallback: readonly string[]): readonly string[] {
  if (v === undefined) return fallback
  return typeof v === 'string' ? [v] : v
}

function normaliseIssuer (as: RawAuthorizationServer, where: string, ctx: NormaliseContext): IssuerConfig {
  const { warnings, problems } = ctx
  for (const key of ['issuer', 'jwksUri', 'metadataUrl'] as const) {
    const v = as[key]
    if (v !== undefined && v.startsWith('http:')) {
      warnings.push(`${where}.${key} uses plain http on loopback: acceptable for development only`)
    }
  }
  if (as.introspection?.endpoint.startsWith('http:') === true) {
    warnings.push(`${where}.introspection.endpoint uses plain http on loopback: acceptable for development only`)
  }
  const profileName = as.profile ?? D.DEFAULT_PROFILE
  const profile = PROFILES[profileName]
  const tokenType = as.tokenType ?? D.DEFAULT_TOKEN_TYPE

  let algorithms: readonly string[] = as.algorithms ?? D.DEFAULT_ALGORITHMS
  let sharedSecret: Uint8Array | undefined
  if (as.sharedSecret !== undefined) {
    const secret = resolveSecret(as.sharedSecret, `${where}.sharedSecret`, ctx)
    // Mixed algorithm lists and key sources are refused by crossChecks.
    if (as.algorithms === undefined) algorithms = ['HS256']
    const need = Math.max(...algorithms.map((a) => D.MIN_SHARED_SECRET_BYTES[a] ?? 32))
    if (secret !== '' && Buffer.byteLength(secret) < need) {
      problems.push(`${where}.sharedSecret: too short (${Buffer.byteLength(secret)} bytes): must be at least ${need} bytes for ${algorithms.join(', ')} (RFC 7518 §3.2)`)
    }
    sharedSecret = new Uint8Array(Buffer.from(secret))
  }

  let introspection: IntrospectionConfig | undefined
  if (tokenType === 'jwt') {
    if (as.introspection !== undefined) problems.push(`${where}.introspection: set but tokenType is jwt: set tokenType: opaque or auto, or remove introspection`)
  } else if (as.introspection === undefined) {
    problems.push(`${where}.introspection: missing: tokenType ${tokenType} needs an introspection endpoint`)
  } else {
    const i = as.introspection
    introspection = Object.freeze({
      endpoint: i.endpoint,
      clientId: i.clientId,
      clientSecret: resolveSecret(i.clientSecret, `${where}.introspection.clientSecret`, ctx),
      authMethod: i.authMethod ?? D.DEFAULT_INTROSPECTION_AUTH_METHOD,
      cacheTtlMs: (i.cacheTtlSeconds ?? D.DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS) * 1000,
      negativeCacheTtlMs: (i.negativeCacheTtlSeconds ?? D.DEFAULT_INTROSPECTION_NEGATIVE_CACHE_TTL_SECONDS) * 1000,
      timeoutMs: (i.timeoutSeconds ?? D.DEFAULT_INTROSPECTION_TIMEOUT_SECONDS) * 1000
    })
  }
  if (tokenType === 'opaque' && (as.sharedSecret !== undefined || as.jwksUri !== undefined)) {
    problems.push(`${where}.tokenType: opaque with sharedSecret or jwksUri: opaque tokens are only introspected; use tokenType auto to accept JWTs too`)
  }

  const audience = as.audience === undefined ? undefined : Object.freeze(typeof as.audience === 'string' ? [as.audience] : [...as.audience])
  const allowedClientIds = as.allowedClientIds === undefined ? undefined : Object.freeze([...as.allowedClientIds])
  let audienceRule: AudienceRule = 'resource'
  if (profile.audience === 'clientIdClaim') {
    audienceRule = 'clientIdClaim'
    if (allowedClientIds === undefined) problems.push(`${where}.allowedClientIds: missing: the ${profileName} profile has no aud, so the accepted client ids must be listed`)
    else warnings.push(`${where}: ${profileName} tokens carry no audience; they are bound to allowedClientIds (client binding), which is weaker than resource binding`)
    if (audience !== undefined) problems.push(`${where}.audience: set for the ${profileName} profile: its tokens have no aud; use allowedClientIds`)
  } else if (profile.audience === 'clientIdsWhenListed' && allowedClientIds !== undefined) {
    audienceRule = 'clientIds'
    warnings.push(`${where}: aud is checked against allowedClientIds (client binding), which is weaker than resource binding: any token issued to those clients is accepted on every route trusting this issuer`)
    if (audience !== undefined) problems.push(`${where}.audience: set together with allowedClientIds: give one of them`)
  } else if (allowedClientIds !== undefined) {
    problems.push(`${where}.allowedClientIds: not used by the ${profileName} profile: only drupal and cognito bind tokens to client ids; use audience`)
  }
  if (profile.requiresAudience && audience === undefined) {
    problems.push(`${where}.audience: missing: ${profileName} tokens never carry the MCP URL in aud; give the API's application (client) ID or App ID URI`)
  }
  for (const bad of profile.forbiddenAudiences) {
    if (audience?.includes(bad) === true) problems.push(`${where}.audience: contains ${JSON.stringify(bad)}: the ${profileName} profile never accepts it (any client of the realm gets it)`)
  }

  const requireIssuer = as.requireIssuer ?? true
  if (!requireIssuer) {
    warnings.push(`${where}.requireIssuer is false: tokens without iss are accepted when this issuer's keys verify them`)
    if (tokenType === 'opaque') problems.push(`${where}.requireIssuer: false with tokenType opaque: it applies to JWTs only`)
  }

  const requiredClaims = Object.freeze(Object.entries({ ...profile.requiredClaims, ...(as.requiredClaims ?? {}) })
    .map(([k, v]) => Object.freeze([Object.freeze(k.split('.')), v] as const)))
  const c = as.claims
  return Object.freeze({
    issuer: as.issuer,
    profile: profileName,
    tokenType,
    jwksUri: as.jwksUri,
    metadataUrl: as.metadataUrl,
    algorithms: Object.freeze([...algorithms]),
    sharedSecret,
    audienceRule,
    audience,
    allowedClientIds,
    forbiddenAudiences: Object.freeze([...profile.forbiddenAudiences]),
    requireIssuer,
    requiredClaims,
    forbiddenHeaderParams: Object.freeze([...profile.forbiddenHeaderParams]),
    claims: Object.freeze({
      subject: paths(asList(c?.subject, profile.claims.subject)),
      clientId: paths(asList(c?.clientId, profile.claims.clientId)),
      scopes: paths(c?.scopes ?? profile.claims.scopes),
      roles: paths(c?.roles ?? profile.claims.roles)
    }),
    clockToleranceSeconds: as.clockToleranceSeconds ?? D.DEFAULT_CLOCK_TOLERANCE_SECONDS,
    introspection
  })
}

/** The route's trusted issuers: all by default; at most one that introspects and one without `iss`, since neither can be chosen by `iss`. */
function routeIssuers (list: readonly string[] | undefined, byIssuer: ReadonlyMap<string, IssuerConfig>, where: string, problems: string[]): readonly string[] {
  const chosen = list === undefined ? [...byIssuer.keys()] : [...new Set(list)]
  if (list !== undefined) {
    if (chosen.length !== list.length) problems.push(`${where}: an issuer is listed twice: list each issuer once`)
    list.forEach((iss, j) => {
      if (!byIssuer.has(iss)) problems.push(`${where}[${j}]: not a configured issuer: must be one of authorizationServers[].issuer`)
    })
  }
  const known = chosen.map((iss) => byIssuer.get(iss)).filter((a): a is IssuerConfig => a !== undefined)
  if (known.filter((a) => a.introspection !== undefined).length > 1) {
    problems.push(`${where}: more than one issuer uses introspection: an opaque token cannot say which issuer it came from; give the route one introspecting issuer`)
  }
  if (known.filter((a) => !a.requireIssuer).length > 1) {
    problems.push(`${where}: more than one issuer has requireIssuer false: a token without iss must have one candidate issuer`)
  }
  return Object.freeze(chosen)
}

function normalisePolicy (p: NonNullable<RawConfig['routes'][number]['policy']>): PolicyConfig {
  const uniq = (l: readonly string[]): readonly string[] => Object.freeze([...new Set(l)])
  const entries = (m: Record<string, string[]> | undefined): ReadonlyArray<readonly [string, readonly string[]]> =>
    Object.freeze(Object.entries(m ?? {}).map(([k, v]) => Object.freeze([k, uniq(v)] as const)))
  const tools = entries(p.tools)
  return Object.freeze({
    default: uniq(p.default),
    methods: new Map(Object.entries(p.methods ?? {}).map(([k, v]) => [k, uniq(v)])),
    tools,
    resources: entries(p.resources),
    prompts: entries(p.prompts),
    filterToolsList: p.filterToolsList ?? tools.length > 0
  })
}
