/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * asserting metric names and values after real traffic. Every line must be a
 * comment (`# HELP` / `# TYPE`), blank, or a sample; anything else throws, so
 * a malformed scrape fails the test instead of being half-read.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Scrape {
  samples: Sample[]
  /** `# TYPE` of each family. */
  types: Map<string, string>
  /** The raw text. */
  text: string
  /** Sum of the samples named `name` whose labels include `labels` (0 when none). */
  sum: (name: string, labels?: Record<string, string>) => number
  /** The one sample named `name` with exactly these label values for the given keys; throws when there is not exactly one. */
  one: (name: string, labels?: Record<string, string>) => number
  /** The values of `label` over the samples named `name` (whose labels include `where`). */
  labelValues: (name: string, label: string, where?: Record<string, string>) => Set<string>
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y

function parseLabels (text: string, line: string): Record<string, string> {
  const out: Record<string, string> = {}
  LABEL_RE.lastIndex = 0
  while (LABEL_RE.lastIndex < text.length) {
    const m = LABEL_RE.exec(text)
    if (m === null) throw new Error(`bad labels in: ${line}`)
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c))
  }
  return out
}

function parseValue (v: string, line: string): number {
  if (v === '+Inf') return Infinity
  if (v === '-Inf') return -Infinity
  if (v === 'NaN' || v === 'Nan') return NaN
  const n = Number(v)
  if (Number.isNaN(n)) throw new Error(`bad value in: ${line}`)
  return n
}

function includes (labels: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v)
}

export function parsePrometheus (text: string): Scrape {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('# HELP ')) continue
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ')
      if (name === undefined || type === undefined) throw new Error(`bad TYPE line: ${line}`)
      types.set(name, type)
      continue
    }
    const m = SAMPLE_RE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    samples.push({ name: m[1]!, labels: m[2] === undefined ? {} : parseLabels(m[2], line), value: parseValue(m[3]!, line) })
  }
  const matching = (name: string, labels: Record<string, string>): Sample[] => samples.filter((s) => s.name === name && includes(s.labels, labels))
  return {
    samples,
    types,
    text,
    sum: (name, labels = {}) => matching(name, labels).reduce((a, s) => a + s.value, 0),
    one: (name, labels = {}) => {
      const found = matching(name, labels)
      if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
      return found[0]!.value
    },
    labelValues: (name, label, where = {}) => new Set(matching(name, where).map((s) => s.labels[label]).filter((v): v is string => v !== undefined))
  }
}

/** GET the metrics and parse them (the status and content type are checked). */
export async function scrape (url: string): Promise<Scrape> {
  const res = await fetch(url)
  if (res.status !== 200) throw new Error(`scrape ${url}: HTTP ${res.status}`)
  const type = res.headers.get('content-type') ?? ''
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`scrape ${url}: content-type ${type}`)
  return parsePrometheus(await res.text())
}
