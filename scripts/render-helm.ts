/**
 * Render a Helm chart without a helm binary (none is packaged in Debian):
 * `npx tsx scripts/render-helm.ts deploy/helm/mcp-auth-gateway [-f values.yaml] [--set mode=standalone]`
 * prints what `helm template` would (`--set` values are read as YAML scalars), and
 * `renderChart()` returns it to tests.
 *
 * It implements only the subset of Go templates (text/template plus a few Sprig
 * functions) that deploy/helm/mcp-auth-gateway uses, and fails loudly on
 * everything else: an unknown function, keyword or syntax, a field read through
 * a missing map, or a missing value printed into a manifest is an error, never
 * an empty string (helm would print "" for the last one; we would rather fail).
 *
 * Supported:
 * - actions `{{ }}` with `{{- ` / ` -}}` whitespace trimming, comments `{{/* *\/}}`
 * - `if` / `else if` / `else` / `end`, `with` / `else` / `end`, `define "name"`
 * - operands: `.`, `$`, `.A.B`, `$.A.B`, "strings", `raw strings`, numbers,
 *   true / false / nil, `( pipeline )`, pipelines with `|`
 * - functions: include, toYaml, nindent, indent, quote, default, required,
 *   fail, printf (%s %d %v), trunc, trimSuffix, eq, ne, not, and, or, empty,
 *   sha256sum
 * - objects: .Values, .Release.Name/Namespace/Service, .Chart.Name/Version/AppVersion
 */
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parse, stringify } from 'yaml'

/** A template construct the renderer does not support, or a template that fails (required, fail, bad types). */
export class TemplateError extends Error {
  override name = 'TemplateError'
}

// ---------------------------------------------------------------------------
// Lexing: text and actions

interface Pos { readonly file: string, readonly line: number }

type Raw =
  | { kind: 'text', text: string }
  | { kind: 'action', src: string, pos: Pos, trimLeft: boolean, trimRight: boolean }

function where (pos: Pos): string {
  return `${pos.file}:${pos.line}`
}

function lex (src: string, file: string): Raw[] {
  const out: Raw[] = []
  let i = 0
  while (i < src.length) {
    const open = src.indexOf('{{', i)
    if (open === -1) {
      out.push({ kind: 'text', text: src.slice(i) })
      break
    }
    out.push({ kind: 'text', text: src.slice(i, open) })
    const line = src.slice(0, open).split('\n').length
    const pos = { file, line }
    // Go: "{{- " trims only when the dash is followed by white space ("{{-3}}" is a number).
    let start = open + 2
    let trimLeft = false
    if (src[start] === '-' && /[ \t\r\n]/.test(src[start + 1] ?? '')) {
      trimLeft = true
      start += 1
    }
    // Find the closing "}}" outside string literals and comments.
    let j = start
    let close = -1
    while (j < src.length) {
      const c = src[j]
      if (c === '"') {
        j++
        while (j < src.length && src[j] !== '"') {
          if (src[j] === '\\') j++
          if (src[j] === '\n') throw new TemplateError(`${where(pos)}: unterminated string in action`)
          j++
        }
        j++
      } else if (c === '`') {
        const end = src.indexOf('`', j + 1)
        if (end === -1) throw new TemplateError(`${where(pos)}: unterminated raw string in action`)
        j = end + 1
      } else if (c === '/' && src[j + 1] === '*') {
        const end = src.indexOf('*/', j + 2)
        if (end === -1) throw new TemplateError(`${where(pos)}: unterminated comment`)
        j = end + 2
      } else if (c === '}' && src[j + 1] === '}') {
        close = j
        break
      } else {
        j++
      }
    }
    if (close === -1) throw new TemplateError(`${where(pos)}: unclosed action "{{"`)
    let end = close
    let trimRight = false
    if (src[close - 1] === '-' && /[ \t\r\n]/.test(src[close - 2] ?? '')) {
      trimRight = true
      end = close - 1
    }
    out.push({ kind: 'action', src: src.slice(start, end), pos, trimLeft, trimRight })
    i = close + 2
  }
  // Apply trim markers to the neighbouring text.
  for (let k = 0; k < out.length; k++) {
    const tok = out[k]!
    if (tok.kind !== 'action') continue
    const prev = out[k - 1]
    const next = out[k + 1]
    if (tok.trimLeft && prev?.kind === 'text') prev.text = prev.text.replace(/[ \t\r\n]+$/, '')
    if (tok.trimRight && next?.kind === 'text') next.text = next.text.replace(/^[ \t\r\n]+/, '')
  }
  return out
}

// ---------------------------------------------------------------------------
// Action tokens and expressions

type Tok =
  | { t: 'str', v: string }
  | { t: 'num', v: number }
  | { t: 'field', root: 'dot' | 'root', path: string[] }
  | { t: 'ident', v: string }
  | { t: 'lparen' | 'rparen' | 'pipe' }

type Operand =
  | { k: 'lit', v: unknown }
  | { k: 'field', root: 'dot' | 'root', path: string[] }
  | { k: 'pipe', pipe: Pipeline }
  | { k: 'fn', name: string }

type Command = Operand[]
type Pipeline = Command[]

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*/
const FIELD_RE = /^\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?/
const NUM_RE = /^-?\d+(?:\.\d+)?/

function tokenize (src: string, pos: Pos): Tok[] {
  const toks: Tok[] = []
  let i = 0
  while (i < src.length) {
    const rest = src.slice(i)
    const ws = /^[ \t\r\n]+/.exec(rest)
    if (ws !== null) { i += ws[0].length; continue }
    const c = rest[0]!
    if (c === '"') {
      let j = 1
      let v = ''
      while (j < rest.length && rest[j] !== '"') {
        if (rest[j] === '\\') {
          const e = rest[j + 1]
          const map: Record<string, string> = { '\\': '\\', '"': '"', n: '\n', t: '\t' }
          if (e === undefined || map[e] === undefined) throw new TemplateError(`${where(pos)}: unsupported escape "\\${e ?? ''}" in string`)
          v += map[e]
          j += 2
        } else {
          v += rest[j]
          j++
        }
      }
      toks.push({ t: 'str', v })
      i += j + 1
    } else if (c === '`') {
      const end = rest.indexOf('`', 1)
      toks.push({ t: 'str', v: rest.slice(1, end) })
      i += end + 1
    } else if (c === '(' || c === ')' || c === '|') {
      // A field chained onto a parenthesised value, "(x).Field", is not supported.
      if (c === ')' && rest[1] === '.') throw new TemplateError(`${where(pos)}: unsupported syntax: a field of a parenthesised value`)
      toks.push({ t: c === '(' ? 'lparen' : c === ')' ? 'rparen' : 'pipe' })
      i++
    } else if (c === '$') {
      if (rest[1] === '.') {
        const m = FIELD_RE.exec(rest.slice(1))!
        toks.push({ t: 'field', root: 'root', path: m[1] === undefined ? [] : m[1].split('.') })
        i += 1 + m[0].length
      } else if (IDENT_RE.test(rest.slice(1))) {
        throw new TemplateError(`${where(pos)}: unsupported: template variables ($name)`)
      } else {
        toks.push({ t: 'field', root: 'root', path: [] })
        i++
      }
    } else if (c === '.') {
      const m = FIELD_RE.exec(rest)!
      toks.push({ t: 'field', root: 'dot', path: m[1] === undefined ? [] : m[1].split('.') })
      i += m[0].length
    } else if (NUM_RE.test(rest) && (c !== '-' || /\d/.test(rest[1] ?? ''))) {
      const m = NUM_RE.exec(rest)!
      toks.push({ t: 'num', v: Number(m[0]) })
      i += m[0].length
    } else if (IDENT_RE.test(rest)) {
      const m = IDENT_RE.exec(rest)!
      toks.push({ t: 'ident', v: m[0] })
      i += m[0].length
      if (rest[m[0].length] === '.') throw new TemplateError(`${where(pos)}: unsupported syntax: a field of ${m[0]}`)
    } else if (rest.startsWith(':=') || rest.startsWith('=')) {
      throw new TemplateError(`${where(pos)}: unsupported: variable assignment`)
    } else {
      throw new TemplateError(`${where(pos)}: unexpected character ${JSON.stringify(c)} in action`)
    }
  }
  return toks
}

const LITERAL_IDENTS: Readonly<Record<string, unknown>> = { true: true, false: false, nil: undefined }

/** Parse a pipeline from toks[at...] up to a closing paren (when nested) or the end. */
function parsePipeline (toks: Tok[], at: { i: number }, pos: Pos, nested: boolean): Pipeline {
  const pipeline: Pipeline = []
  let cmd: Command = []
  for (;;) {
    const tok = toks[at.i]
    if (tok === undefined || tok.t === 'rparen') {
      if (tok === undefined && nested) throw new TemplateError(`${where(pos)}: unclosed "("`)
      if (tok?.t === 'rparen' && !nested) throw new TemplateError(`${where(pos)}: unexpected ")"`)
      if (cmd.length === 0) throw new TemplateError(`${where(pos)}: empty command in pipeline`)
      pipeline.push(cmd)
      if (tok !== undefined) at.i++
      return pipeline
    }
    at.i++
    switch (tok.t) {
      case 'pipe':
        if (cmd.length === 0) throw new TemplateError(`${where(pos)}: empty command before "|"`)
        pipeline.push(cmd)
        cmd = []
        break
      case 'lparen':
        cmd.push({ k: 'pipe', pipe: parsePipeline(toks, at, pos, true) })
        break
      case 'str':
      case 'num':
        cmd.push({ k: 'lit', v: tok.v })
        break
      case 'field':
        cmd.push({ k: 'field', root: tok.root, path: tok.path })
        break
      case 'ident':
        if (Object.hasOwn(LITERAL_IDENTS, tok.v)) cmd.push({ k: 'lit', v: LITERAL_IDENTS[tok.v] })
        else if (cmd.length > 0) throw new TemplateError(`${where(pos)}: unsupported: ${tok.v} as an argument (call it in parentheses)`)
        else if (!Object.hasOwn(FUNCTIONS, tok.v)) throw new TemplateError(`${where(pos)}: unsupported function or keyword "${tok.v}"`)
        else cmd.push({ k: 'fn', name: tok.v })
        break
    }
  }
}

// ---------------------------------------------------------------------------
// Template tree

type Node =
  | { n: 'text', text: string }
  | { n: 'out', pipe: Pipeline, pos: Pos }
  | { n: 'if', pipe: Pipeline, then: Node[], else: Node[], pos: Pos }
  | { n: 'with', pipe: Pipeline, then: Node[], else: Node[], pos: Pos }

type Term = { kind: 'end' } | { kind: 'else' } | { kind: 'elseif', pipe: Pipeline, pos: Pos } | { kind: 'eof' }

const UNSUPPORTED_KEYWORDS = new Set(['range', 'template', 'block', 'break', 'continue'])

class Parser {
  private i = 0
  constructor (private readonly raws: Raw[], private readonly defines: Map<string, Node[]>, private readonly file: string) {}

  /** Nodes up to a terminator (`else`, `else if`, `end`) or the end of input. */
  list (topLevel: boolean): { nodes: Node[], term: Term, pos?: Pos } {
    const nodes: Node[] = []
    while (this.i < this.raws.length) {
      const raw = this.raws[this.i++]!
      if (raw.kind === 'text') {
        if (raw.text !== '') nodes.push({ n: 'text', text: raw.text })
        continue
      }
      const src = raw.src.trim()
      if (src.startsWith('/*')) {
        if (!src.endsWith('*/')) throw new TemplateError(`${where(raw.pos)}: a comment must fill its action`)
        continue
      }
      const toks = tokenize(src, raw.pos)
      const head = toks[0]
      const kw = head?.t === 'ident' && !Object.hasOwn(FUNCTIONS, head.v) && !Object.hasOwn(LITERAL_IDENTS, head.v) ? head.v : undefined
      if (kw === undefined) {
        nodes.push({ n: 'out', pipe: this.pipe(toks, 0, raw.pos), pos: raw.pos })
        continue
      }
      switch (kw) {
        case 'if':
          nodes.push(this.ifNode(this.pipe(toks, 1, raw.pos), raw.pos))
          break
        case 'with': {
          const pipe = this.pipe(toks, 1, raw.pos)
          const body = this.list(false)
          let elseNodes: Node[] = []
          if (body.term.kind === 'else') {
            const rest = this.list(false)
            if (rest.term.kind !== 'end') throw new TemplateError(`${where(raw.pos)}: "with ... else" must close with "end"`)
            elseNodes = rest.nodes
          } else if (body.term.kind !== 'end') {
            throw new TemplateError(`${where(raw.pos)}: "with" must close with "end"`)
          }
          nodes.push({ n: 'with', pipe, then: body.nodes, else: elseNodes, pos: raw.pos })
          break
        }
        case 'define': {
          if (!topLevel) throw new TemplateError(`${where(raw.pos)}: "define" is only allowed at the top level`)
          const name = toks[1]
          if (name?.t !== 'str' || toks.length !== 2) throw new TemplateError(`${where(raw.pos)}: define needs exactly one string name`)
          const body = this.list(false)
          if (body.term.kind !== 'end') throw new TemplateError(`${where(raw.pos)}: define "${name.v}" must close with "end"`)
          if (this.defines.has(name.v)) throw new TemplateError(`${where(raw.pos)}: template "${name.v}" is defined twice`)
          this.defines.set(name.v, body.nodes)
          break
        }
        case 'end':
          if (topLevel) throw new TemplateError(`${where(raw.pos)}: "end" without an open "if", "with" or "define"`)
          if (toks.length !== 1) throw new TemplateError(`${where(raw.pos)}: "end" takes no arguments`)
          return { nodes, term: { kind: 'end' }, pos: raw.pos }
        case 'else': {
          if (topLevel) throw new TemplateError(`${where(raw.pos)}: "else" without an open "if" or "with"`)
          if (toks.length === 1) return { nodes, term: { kind: 'else' }, pos: raw.pos }
          const next = toks[1]
          if (next?.t === 'ident' && next.v === 'if') return { nodes, term: { kind: 'elseif', pipe: this.pipe(toks, 2, raw.pos), pos: raw.pos }, pos: raw.pos }
          throw new TemplateError(`${where(raw.pos)}: unsupported: "else" followed by something other than "if"`)
        }
        default:
          if (UNSUPPORTED_KEYWORDS.has(kw)) throw new TemplateError(`${where(raw.pos)}: unsupported keyword "${kw}"`)
          throw new TemplateError(`${where(raw.pos)}: unsupported function or keyword "${kw}"`)
      }
    }
    if (!topLevel) throw new TemplateError(`${this.file}: unexpected end of template: an "if", "with" or "define" is not closed with "end"`)
    return { nodes, term: { kind: 'eof' } }
  }

  private pipe (toks: Tok[], from: number, pos: Pos): Pipeline {
    if (from >= toks.length) throw new TemplateError(`${where(pos)}: missing value`)
    return parsePipeline(toks, { i: from }, pos, false)
  }

  private ifNode (pipe: Pipeline, pos: Pos): Node {
    const body = this.list(false)
    switch (body.term.kind) {
      case 'end':
        return { n: 'if', pipe, then: body.nodes, else: [], pos }
      case 'else': {
        const rest = this.list(false)
        if (rest.term.kind !== 'end') throw new TemplateError(`${where(pos)}: "if ... else" must close with "end"`)
        return { n: 'if', pipe, then: body.nodes, else: rest.nodes, pos }
      }
      case 'elseif':
        // The chain's single "end" is consumed by the innermost if.
        return { n: 'if', pipe, then: body.nodes, else: [this.ifNode(body.term.pipe, body.term.pos)], pos }
      default:
        throw new TemplateError(`${where(pos)}: "if" must close with "end"`)
    }
  }
}

// ---------------------------------------------------------------------------
// Evaluation

interface Scope {
  readonly dot: unknown
  readonly root: unknown
  readonly defines: ReadonlyMap<string, Node[]>
  readonly depth: number
}

function isMap (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** Go template truth: false, 0, nil and empty strings, lists and maps are false. */
function truthy (v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false
  if (Array.isArray(v)) return v.length > 0
  if (isMap(v)) return Object.keys(v).length > 0
  return true
}

function field (base: unknown, path: readonly string[], pos: Pos): unknown {
  let cur = base
  for (let k = 0; k < path.length; k++) {
    const name = path[k]!
    if (cur === undefined || cur === null) {
      // helm: "nil pointer evaluating interface {}.name"
      throw new TemplateError(`${where(pos)}: cannot read .${path.slice(0, k + 1).join('.')}: .${path.slice(0, k).join('.')} is missing`)
    }
    if (!isMap(cur)) throw new TemplateError(`${where(pos)}: cannot read .${path.slice(0, k + 1).join('.')}: .${path.slice(0, k).join('.')} is not a map`)
    cur = Object.prototype.hasOwnProperty.call(cur, name) ? cur[name] : undefined
  }
  return cur
}

function str (v: unknown, fn: string, pos: Pos): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  throw new TemplateError(`${where(pos)}: ${fn} needs a string, got ${v === undefined || v === null ? 'a missing value' : Array.isArray(v) ? 'a list' : typeof v}`)
}

function int (v: unknown, fn: string, pos: Pos): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TemplateError(`${where(pos)}: ${fn} needs an integer`)
  return v
}

function indentText (n: number, s: string): string {
  const pad = ' '.repeat(n)
  return pad + s.replace(/\n/g, '\n' + pad)
}

/** Helm's toYaml: sorted keys (sigs.k8s.io/yaml marshals through JSON), lists not indented under their key, no trailing newline. */
function toYaml (v: unknown): string {
  if (v === undefined) return 'null'
  return stringify(v, { indentSeq: false, sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '')
}

function same (a: unknown, b: unknown, pos: Pos): boolean {
  const ta = a === undefined || a === null ? 'nil' : typeof a
  const tb = b === undefined || b === null ? 'nil' : typeof b
  if (ta === 'object' || tb === 'object') throw new TemplateError(`${where(pos)}: eq/ne compare only strings, numbers and booleans`)
  if (ta !== tb) throw new TemplateError(`${where(pos)}: incompatible types for comparison (${ta} and ${tb})`)
  return a === b
}

type Fn = (args: unknown[], scope: Scope, pos: Pos) => unknown

function arity (name: string, args: unknown[], min: number, max: number, pos: Pos): void {
  if (args.length < min || args.length > max) {
    throw new TemplateError(`${where(pos)}: ${name} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${args.length}`)
  }
}

const FUNCTIONS: Readonly<Record<string, Fn>> = {
  include (args, scope, pos) {
    arity('include', args, 2, 2, pos)
    const name = str(args[0], 'include', pos)
    const body = scope.defines.get(name)
    if (body === undefined) throw new TemplateError(`${where(pos)}: no template named "${name}"`)
    if (scope.depth > 50) throw new TemplateError(`${where(pos)}: include nested too deeply (recursion?)`)
    return renderNodes(body, { ...scope, dot: args[1], depth: scope.depth + 1 })
  },
  toYaml (args, _s, pos) {
    arity('toYaml', args, 1, 1, pos)
    return toYaml(args[0])
  },
  indent (args, _s, pos) {
    arity('indent', args, 2, 2, pos)
    return indentText(int(args[0], 'indent', pos), str(args[1], 'indent', pos))
  },
  nindent (args, _s, pos) {
    arity('nindent', args, 2, 2, pos)
    return '\n' + indentText(int(args[0], 'nindent', pos), str(args[1], 'nindent', pos))
  },
  quote (args, _s, pos) {
    arity('quote', args, 1, 1, pos)
    if (args[0] === undefined || args[0] === null) throw new TemplateError(`${where(pos)}: quote of a missing value`)
    // Go's %q; JSON escaping matches it for the printable strings a chart holds.
    return JSON.stringify(str(args[0], 'quote', pos))
  },
  default (args, _s, pos) {
    arity('default', args, 2, 2, pos)
    return truthy(args[1]) ? args[1] : args[0]
  },
  required (args, _s, pos) {
    arity('required', args, 2, 2, pos)
    if (args[1] === undefined || args[1] === null || args[1] === '') throw new TemplateError(`${where(pos)}: ${str(args[0], 'required', pos)}`)
    return args[1]
  },
  fail (args, _s, pos) {
    arity('fail', args, 1, 1, pos)
    throw new TemplateError(`${where(pos)}: ${str(args[0], 'fail', pos)}`)
  },
  printf (args, _s, pos) {
    if (args.length < 1) throw new TemplateError(`${where(pos)}: printf needs a format`)
    const format = str(args[0], 'printf', pos)
    let k = 1
    const out = format.replace(/%[sdv%]/g, (m) => {
      if (m === '%%') return '%'
      if (k >= args.length) throw new TemplateError(`${where(pos)}: printf has fewer arguments than verbs`)
      const v = args[k++]
      if (m === '%d') return String(int(v, 'printf %d', pos))
      return str(v, `printf ${m}`, pos)
    })
    if (/%[^sdv%]/.test(format.replace(/%%/g, ''))) throw new TemplateError(`${where(pos)}: printf supports only %s, %d, %v and %%`)
    if (k !== args.length) throw new TemplateError(`${where(pos)}: printf has more arguments than verbs`)
    return out
  },
  trunc (args, _s, pos) {
    arity('trunc', args, 2, 2, pos)
    const n = int(args[0], 'trunc', pos)
    if (n < 0) throw new TemplateError(`${where(pos)}: trunc with a negative length is not supported`)
    return str(args[1], 'trunc', pos).slice(0, n)
  },
  trimSuffix (args, _s, pos) {
    arity('trimSuffix', args, 2, 2, pos)
    const suffix = str(args[0], 'trimSuffix', pos)
    const s = str(args[1], 'trimSuffix', pos)
    return suffix !== '' && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s
  },
  eq (args, _s, pos) {
    if (args.length < 2) throw new TemplateError(`${where(pos)}: eq needs at least 2 arguments`)
    return args.slice(1).some((b) => same(args[0], b, pos))
  },
  ne (args, _s, pos) {
    arity('ne', args, 2, 2, pos)
    return !same(args[0], args[1], pos)
  },
  not (args, _s, pos) {
    arity('not', args, 1, 1, pos)
    return !truthy(args[0])
  },
  // Go's and/or return the deciding operand (all operands are evaluated here; none has side effects).
  and (args, _s, pos) {
    if (args.length < 2) throw new TemplateError(`${where(pos)}: and needs at least 2 arguments`)
    for (const a of args) if (!truthy(a)) return a
    return args[args.length - 1]
  },
  or (args, _s, pos) {
    if (args.length < 2) throw new TemplateError(`${where(pos)}: or needs at least 2 arguments`)
    for (const a of args) if (truthy(a)) return a
    return args[args.length - 1]
  },
  empty (args, _s, pos) {
    arity('empty', args, 1, 1, pos)
    return !truthy(args[0])
  },
  sha256sum (args, _s, pos) {
    arity('sha256sum', args, 1, 1, pos)
    return createHash('sha256').update(str(args[0], 'sha256sum', pos)).digest('hex')
  }
}

function evalOperand (op: Operand, scope: Scope, pos: Pos): unknown {
  switch (op.k) {
    case 'lit': return op.v
    case 'field': return field(op.root === 'dot' ? scope.dot : scope.root, op.path, pos)
    case 'pipe': return evalPipeline(op.pipe, scope, pos)
    case 'fn': return FUNCTIONS[op.name]!([], scope, pos)
  }
}

function evalPipeline (pipe: Pipeline, scope: Scope, pos: Pos): unknown {
  let value: unknown
  pipe.forEach((cmd, idx) => {
    const head = cmd[0]!
    if (head.k === 'fn') {
      const args = cmd.slice(1).map((op) => evalOperand(op, scope, pos))
      if (idx > 0) args.push(value)
      value = FUNCTIONS[head.name]!(args, scope, pos)
    } else {
      if (cmd.length > 1) throw new TemplateError(`${where(pos)}: a value cannot take arguments (is a function name missing?)`)
      if (idx > 0) throw new TemplateError(`${where(pos)}: a value cannot be the target of "|"`)
      value = evalOperand(head, scope, pos)
    }
  })
  return value
}

/** What an action prints. A missing value or a map/list is an error, never "" or Go's map[...] text. */
function format (v: unknown, pos: Pos): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (v === undefined || v === null) throw new TemplateError(`${where(pos)}: renders a missing value (set it in values.yaml, or guard it with "if")`)
  throw new TemplateError(`${where(pos)}: renders a ${Array.isArray(v) ? 'list' : 'map'} directly; use toYaml`)
}

function renderNodes (nodes: readonly Node[], scope: Scope): string {
  let out = ''
  for (const node of nodes) {
    switch (node.n) {
      case 'text': out += node.text; break
      case 'out': out += format(evalPipeline(node.pipe, scope, node.pos), node.pos); break
      case 'if': out += renderNodes(truthy(evalPipeline(node.pipe, scope, node.pos)) ? node.then : node.else, scope); break
      case 'with': {
        const v = evalPipeline(node.pipe, scope, node.pos)
        out += truthy(v) ? renderNodes(node.then, { ...scope, dot: v }) : renderNodes(node.else, scope)
        break
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------
// Charts

/** Helm's value merge: maps merge recursively, anything else replaces, null deletes the key. */
export function mergeValues (base: unknown, override: unknown): unknown {
  if (!isMap(base) || !isMap(override)) return override
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(override)) {
    if (v === null) delete out[k]
    else out[k] = mergeValues(base[k], v)
  }
  return out
}

export interface RenderOptions {
  /** Merged over values.yaml, like `helm template -f`. */
  readonly values?: Record<string, unknown>
  /** Default "release". */
  readonly releaseName?: string
  /** Default "default". */
  readonly namespace?: string
}

export interface RenderedChart {
  /** Rendered manifests by template file name (templates/x.yaml → "x.yaml"); templates that render only white space are left out. */
  readonly files: ReadonlyMap<string, string>
  /** All of them as one multi-document stream, like `helm template`. */
  readonly manifest: string
}

/**
 * Render a set of template sources (name → text) against a context; `_*.tpl`
 * files only contribute defines. Exposed for tests of the renderer itself.
 */
export function renderTemplates (sources: ReadonlyMap<string, string>, context: Record<string, unknown>): Map<string, string> {
  const defines = new Map<string, Node[]>()
  const bodies = new Map<string, Node[]>()
  for (const [name, src] of sources) {
    const { nodes } = new Parser(lex(src, name), defines, name).list(true)
    if (!name.startsWith('_')) bodies.set(name, nodes)
  }
  const out = new Map<string, string>()
  for (const [name, nodes] of bodies) {
    const text = renderNodes(nodes, { dot: context, root: context, defines, depth: 0 })
    if (text.trim() !== '') out.set(name, text.replace(/^\n+/, '').replace(/\s*$/, '\n'))
  }
  return out
}

/** Render the chart in `dir` (Chart.yaml, values.yaml, templates/). */
export function renderChart (dir: string, opts: RenderOptions = {}): RenderedChart {
  const chart = parse(readFileSync(join(dir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>
  for (const key of ['name', 'version']) {
    if (typeof chart[key] !== 'string') throw new TemplateError(`Chart.yaml: ${key} must be a string`)
  }
  const defaults = parse(readFileSync(join(dir, 'values.yaml'), 'utf8')) as unknown
  const values = mergeValues(defaults ?? {}, opts.values ?? {})
  const context = {
    Values: values,
    Release: { Name: opts.releaseName ?? 'release', Namespace: opts.namespace ?? 'default', Service: 'Helm', IsInstall: true, IsUpgrade: false },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion }
  }
  const tdir = join(dir, 'templates')
  const sources = new Map<string, string>()
  for (const f of readdirSync(tdir).sort()) {
    if (f === 'NOTES.txt') continue
    if (!/\.(ya?ml|tpl)$/.test(f)) throw new TemplateError(`templates/${f}: not a .yaml, .yml or .tpl file`)
    sources.set(f, readFileSync(join(tdir, f), 'utf8'))
  }
  const files = renderTemplates(sources, context)
  const manifest = [...files].map(([f, text]) => `---\n# Source: ${String(chart.name)}/templates/${f}\n${text}`).join('')
  return { files, manifest }
}

// ---------------------------------------------------------------------------
// Command line

function setPath (target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur = target
  for (const k of keys.slice(0, -1)) {
    if (!isMap(cur[k])) cur[k] = {}
    cur = cur[k] as Record<string, unknown>
  }
  cur[keys[keys.length - 1]!] = value
}

function main (argv: string[]): number {
  const usage = 'usage: tsx scripts/render-helm.ts <chart-dir> [-f values.yaml]... [--set key.path=value]... [--release name] [--namespace ns]\n'
  let dir: string | undefined
  let values: Record<string, unknown> = {}
  const opts: { releaseName?: string, namespace?: string } = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const next = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new TemplateError(`${a} needs a value`)
      return v
    }
    if (a === '-f' || a === '--values') values = mergeValues(values, parse(readFileSync(next(), 'utf8'))) as Record<string, unknown>
    else if (a === '--set') {
      const kv = next()
      const eq = kv.indexOf('=')
      if (eq < 1) throw new TemplateError(`--set ${kv}: use key.path=value`)
      const over: Record<string, unknown> = {}
      setPath(over, kv.slice(0, eq), parse(kv.slice(eq + 1)))
      values = mergeValues(values, over) as Record<string, unknown>
    } else if (a === '--release') opts.releaseName = next()
    else if (a === '--namespace') opts.namespace = next()
    else if (a === '-h' || a === '--help') { process.stdout.write(usage); return 0 }
    else if (a.startsWith('-') || dir !== undefined) { process.stderr.write(usage); return 2 }
    else dir = a
  }
  if (dir === undefined) { process.stderr.write(usage); return 2 }
  process.stdout.write(renderChart(dir, { ...opts, values }).manifest)
  return 0
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`render-helm: ${(err as Error).message}\n`)
    process.exitCode = 1
  }
}
