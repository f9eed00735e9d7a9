/**
 * The YAML in the docs is real configuration: every ```yaml block in
 * docs/providers/*.md and docs/configuration.md is validated with the
 * gateway's own parser (parseConfig), so a guide can never show a key the
 * schema refuses or a combination the loader rejects.
 *
 * Convention for doc authors:
 * - A ```yaml block is a complete config file and must load without problems.
 * - A block whose first line is `# fragment` (optionally followed by text,
 *   e.g. `# fragment: one issuer entry`) is a partial snippet. It is only
 *   checked to be well-formed YAML (no syntax errors, no duplicate keys).
 * - Secrets: `{ fromEnv: NAME }` gets a 64-byte value from the test; a
 *   `{ fromFile: path }` must be a relative path (resolved, like in the real
 *   gateway, from the config file's directory); the test creates that file
 *   (mode 0600, 64 bytes) in a scratch directory used as that directory.
 * - `${NAME}` substitution: NAME must be listed in DOC_ENV below.
 *
 * Also: every profile in src/config/profiles.ts has docs/providers/<name>.md,
 * that guide has at least one complete config using the profile, and
 * docs/providers/README.md links to it.
 *
 * And (issue 6 item 7) every provider guide has the sections
 * `## Provider-side setup`, `## Gateway configuration`,
 * `## Known pitfalls and common errors` and `## Verify with the MCP Inspector`,
 * each once; its Inspector section names the redirect URI to register for the
 * Inspector's web UI; and the index links to each guide's Inspector section.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import t from 'tap';
import { parseDocument } from 'yaml';

import { parseConfig, type Env } from '../../src/config/load.js';
import { PROFILE_NAMES } from '../../src/config/profiles.js';
import type { GatewayConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROVIDERS = join(ROOT, 'docs', 'providers');

/** Values for `${NAME}` references in the docs' YAML. */
const DOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MCP_UPSTREAM: 'http://127.0.0.1:3001/mcp',
});

/** A secret long enough for every HS algorithm (HS512 needs 64 bytes, RFC 7518 §3.2). */
const SECRET = 'x'.repeat(64);

const FRAGMENT_RE = /^#\s*fragment\b/;

interface Block {
  /** Path relative to the repo, for messages. */
  readonly doc: string;
  /** 1-based index among the file's yaml blocks. */
  readonly index: number;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly text: string;
  readonly fragment: boolean;
}

/** Every ```yaml fenced block of a Markdown file (fences at line start, as CommonMark renders them here). */
function yamlBlocks(file: string): Block[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: Block[] = [];
  let start = -1;
  let body: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (start === -1) {
      if (/^```ya?ml\s*$/.test(l)) {
        start = i;
        body = [];
      }
    } else if (/^```\s*$/.test(l)) {
      const text = body.join('\n') + '\n';
      out.push({ doc: relative(ROOT, file), index: out.length + 1, line: start + 1, text, fragment: FRAGMENT_RE.test(body[0] ?? '') });
      start = -1;
    } else {
      body.push(l);
    }
  }
  if (start !== -1) throw new Error(`${relative(ROOT, file)}: unclosed code fence at line ${start + 1}`);
  return out;
}

/** Every `{ fromEnv }` / `{ fromFile }` value anywhere in a parsed document. */
function secretRefs(value: unknown, into: { env: Set<string>; files: Set<string> }): void {
  if (Array.isArray(value)) {
    for (const v of value) secretRefs(v, into);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'fromEnv' && typeof v === 'string') into.env.add(v);
      else if (k === 'fromFile' && typeof v === 'string') into.files.add(v);
      else secretRefs(v, into);
    }
  }
}

function label(b: Block): string {
  return `${b.doc} yaml block #${b.index} (line ${b.line})`;
}

const providerDocs = readdirSync(PROVIDERS).filter((f) => f.endsWith('.md')).sort().map((f) => join(PROVIDERS, f));
const docs = [...providerDocs, join(ROOT, 'docs', 'configuration.md')];
const blocks = docs.flatMap(yamlBlocks);
/** Normalised configs of the complete blocks, by doc path. */
const loaded = new Map<string, GatewayConfig[]>();

const scratch = mkdtempSync(join(tmpdir(), 'provider-docs-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

t.test('the docs hold YAML to check', async (t) => {
  t.ok(blocks.filter((b) => !b.fragment).length >= PROFILE_NAMES.length, `${blocks.length} yaml blocks, ${blocks.filter((b) => !b.fragment).length} complete`);
  t.ok(blocks.some((b) => b.doc === join('docs', 'configuration.md')), 'docs/configuration.md has yaml blocks');
});

for (const b of blocks) {
  t.test(label(b), async (t) => {
    const doc = parseDocument(b.text, { uniqueKeys: true });
    t.strictSame(doc.errors.map((e) => e.message), [], `${label(b)}: well-formed YAML`);
    if (b.fragment || doc.errors.length > 0) return;

    const refs = { env: new Set<string>(), files: new Set<string>() };
    secretRefs(doc.toJS(), refs);
    const env: Record<string, string> = { ...DOC_ENV };
    for (const name of refs.env) env[name] = SECRET;
    for (const m of b.text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
      t.ok(DOC_ENV[m[1]!] !== undefined, `${label(b)}: \${${m[1]}} is listed in DOC_ENV`);
    }
    const baseDir = join(scratch, `${b.doc.replaceAll('/', '_')}-${b.index}`);
    mkdirSync(baseDir, { recursive: true });
    for (const f of refs.files) {
      t.notOk(isAbsolute(f), `${label(b)}: fromFile ${f} is relative (the test creates it next to the config)`);
      if (isAbsolute(f)) continue;
      mkdirSync(dirname(join(baseDir, f)), { recursive: true });
      writeFileSync(join(baseDir, f), SECRET + '\n', { mode: 0o600 });
    }

    let config: GatewayConfig | undefined;
    try {
      config = parseConfig(b.text, { env: env as Env, baseDir });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      t.fail(`${label(b)} is not a valid config:\n  ${err.problems.join('\n  ')}`);
      return;
    }
    t.pass(`${label(b)} loads: ${config.authorizationServers.length} issuer(s), ${config.routes.length} route(s)`);
    for (const w of config.warnings) t.comment(`warning: ${w}`);
    loaded.set(b.doc, [...(loaded.get(b.doc) ?? []), config]);
  });
}

t.test('every profile has a guide with a config that uses it', async (t) => {
  const index = readFileSync(join(PROVIDERS, 'README.md'), 'utf8');
  for (const name of PROFILE_NAMES) {
    const doc = join('docs', 'providers', `${name}.md`);
    t.ok(providerDocs.includes(join(ROOT, doc)), `${doc} exists`);
    const configs = loaded.get(doc) ?? [];
    t.ok(configs.length > 0, `${doc} has at least one complete config that loads`);
    t.ok(configs.some((c) => c.authorizationServers.some((a) => a.profile === name)), `${doc}: a config has an issuer with profile ${name}`);
    t.ok(index.includes(`(${name}.md)`), `docs/providers/README.md links to ${name}.md`);
  }
});

/** The seven provider guides of issue 6 item 7. */
const GUIDES = ['drupal', 'keycloak', 'auth0', 'okta', 'entra', 'cognito', 'generic'] as const;

/**
 * Sections every guide has, once. A heading matches its title exactly, or the
 * title followed by a parenthesised note (`## Provider-side setup (oidc-provider)`).
 */
const REQUIRED_SECTIONS = [
  'Provider-side setup',
  'Gateway configuration',
  'Known pitfalls and common errors',
  'Verify with the MCP Inspector',
] as const;
const INSPECTOR_SECTION = 'Verify with the MCP Inspector';
const PITFALLS_SECTION = 'Known pitfalls and common errors';

/**
 * The redirect URI of the Inspector's web UI: its page origin (default
 * http://localhost:6274) plus /oauth/callback, per the Inspector's
 * clients/cli/README.md callback table and its browser OAuth provider.
 */
const INSPECTOR_REDIRECT_URI = 'http://localhost:6274/oauth/callback';
/** The index's shared Inspector section, which every guide's section links to. */
const INDEX_INSPECTOR_HEADING = 'Verifying with the MCP Inspector';

interface Section {
  readonly title: string;
  readonly body: string;
}

/** The level-2 sections of a Markdown text; headings inside code fences do not count. */
function level2Sections(text: string): Section[] {
  const out: { title: string; lines: string[] }[] = [];
  let fence: string | null = null;
  for (const line of text.split('\n')) {
    const f = /^\s*(```|~~~)/.exec(line);
    if (f !== null) {
      if (fence === null) fence = f[1]!;
      else if (line.trim().startsWith(fence)) fence = null;
    } else if (fence === null && line.startsWith('## ')) {
      out.push({ title: line.slice(3).trim(), lines: [] });
      continue;
    }
    out.at(-1)?.lines.push(line);
  }
  return out.map((s) => ({ title: s.title, body: s.lines.join('\n') }));
}

function matchesTitle(heading: string, title: string): boolean {
  return heading === title || heading.startsWith(`${title} (`);
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`. */
function anchorOf(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

/** What a provider guide lacks; empty when it has every required part. */
function guideProblems(text: string): string[] {
  const all = level2Sections(text);
  const problems: string[] = [];
  for (const title of REQUIRED_SECTIONS) {
    const n = all.filter((s) => matchesTitle(s.title, title)).length;
    if (n === 0) problems.push(`missing "## ${title}"`);
    else if (n > 1) problems.push(`"## ${title}" appears ${n} times`);
  }
  if (all.some((s) => s.title === 'Common errors')) problems.push(`has "## Common errors": it is "## ${PITFALLS_SECTION}" now`);
  const inspector = all.find((s) => s.title === INSPECTOR_SECTION);
  if (inspector !== undefined) {
    if (!inspector.body.includes(INSPECTOR_REDIRECT_URI)) problems.push(`"## ${INSPECTOR_SECTION}" does not name the redirect URI ${INSPECTOR_REDIRECT_URI}`);
    if (!/\bregister/i.test(inspector.body)) problems.push(`"## ${INSPECTOR_SECTION}" does not say to register the redirect URI`);
    if (!inspector.body.includes(`(README.md#${anchorOf(INDEX_INSPECTOR_HEADING)})`)) problems.push(`"## ${INSPECTOR_SECTION}" does not link to README.md#${anchorOf(INDEX_INSPECTOR_HEADING)}`);
  }
  const pitfalls = all.find((s) => s.title === PITFALLS_SECTION);
  if (pitfalls !== undefined && !pitfalls.body.includes('| log `outcome`')) problems.push(`"## ${PITFALLS_SECTION}" has no table of log outcomes`);
  return problems;
}

t.test('the guide checks catch what they are meant to catch', async (t) => {
  // A minimal complete guide, then one mutation per case.
  const good = [
    '# X',
    '## Provider-side setup (example)',
    'steps',
    '## Gateway configuration',
    '```yaml',
    '# fragment',
    '```',
    `## ${INSPECTOR_SECTION}`,
    `See [README.md](README.md#${anchorOf(INDEX_INSPECTOR_HEADING)}). Register ${INSPECTOR_REDIRECT_URI}.`,
    `## ${PITFALLS_SECTION}`,
    '| log `outcome` | cause | fix |',
    '',
  ].join('\n');
  const cases: { name: string; text: string; problems: string[] }[] = [
    { name: 'a complete guide', text: good, problems: [] },
    {
      name: 'no Inspector section',
      text: good.replace(`## ${INSPECTOR_SECTION}`, '## Trying it'),
      problems: [`missing "## ${INSPECTOR_SECTION}"`],
    },
    {
      name: 'the old error heading',
      text: good.replace(`## ${PITFALLS_SECTION}`, '## Common errors'),
      problems: [`missing "## ${PITFALLS_SECTION}"`, `has "## Common errors": it is "## ${PITFALLS_SECTION}" now`],
    },
    {
      name: 'no setup section',
      text: good.replace('## Provider-side setup (example)', '## Setup'),
      problems: ['missing "## Provider-side setup"'],
    },
    {
      name: 'a prefix is not the title',
      text: good.replace('## Gateway configuration', '## Gateway configuration files'),
      problems: ['missing "## Gateway configuration"'],
    },
    {
      name: 'a section twice',
      text: `${good}## Gateway configuration\nagain\n`,
      problems: ['"## Gateway configuration" appears 2 times'],
    },
    {
      name: 'a heading inside a code fence does not count',
      text: good.replace(`## ${INSPECTOR_SECTION}\n`, `\`\`\`\n## ${INSPECTOR_SECTION}\n\`\`\`\n`),
      problems: [`missing "## ${INSPECTOR_SECTION}"`],
    },
    {
      name: 'another redirect URI',
      text: good.replace(INSPECTOR_REDIRECT_URI, 'http://localhost:6274/callback'),
      problems: [`"## ${INSPECTOR_SECTION}" does not name the redirect URI ${INSPECTOR_REDIRECT_URI}`],
    },
    {
      name: 'the redirect URI only outside the Inspector section',
      text: good.replace(`Register ${INSPECTOR_REDIRECT_URI}.`, 'Register it.').replace('steps', `steps ${INSPECTOR_REDIRECT_URI}`),
      problems: [`"## ${INSPECTOR_SECTION}" does not name the redirect URI ${INSPECTOR_REDIRECT_URI}`],
    },
    {
      name: 'no word about registering it',
      text: good.replace('Register', 'Use'),
      problems: [`"## ${INSPECTOR_SECTION}" does not say to register the redirect URI`],
    },
    {
      name: 'no link to the shared Inspector notes',
      text: good.replace(`(README.md#${anchorOf(INDEX_INSPECTOR_HEADING)})`, '(README.md)'),
      problems: [`"## ${INSPECTOR_SECTION}" does not link to README.md#${anchorOf(INDEX_INSPECTOR_HEADING)}`],
    },
    {
      name: 'the error table dropped',
      text: good.replace('| log `outcome` | cause | fix |', 'none'),
      problems: [`"## ${PITFALLS_SECTION}" has no table of log outcomes`],
    },
  ];
  for (const c of cases) t.strictSame(guideProblems(c.text), c.problems, c.name);
  t.equal(anchorOf(INDEX_INSPECTOR_HEADING), 'verifying-with-the-mcp-inspector', 'anchor of the index section');
  t.equal(anchorOf(`${PITFALLS_SECTION}`), 'known-pitfalls-and-common-errors', 'anchor of the pitfalls section');
});

t.test('every provider guide has setup, configuration, pitfalls and an Inspector walkthrough', async (t) => {
  t.strictSame([...GUIDES].sort(), [...PROFILE_NAMES].sort(), 'the seven guides are the seven profiles');
  for (const name of GUIDES) {
    const doc = join(PROVIDERS, `${name}.md`);
    t.strictSame(guideProblems(readFileSync(doc, 'utf8')), [], `${relative(ROOT, doc)} has every required part`);
  }
});

t.test('the index describes the Inspector and links to each guide\'s Inspector section', async (t) => {
  const index = readFileSync(join(PROVIDERS, 'README.md'), 'utf8');
  const shared = level2Sections(index).filter((s) => s.title === INDEX_INSPECTOR_HEADING);
  t.equal(shared.length, 1, `docs/providers/README.md has "## ${INDEX_INSPECTOR_HEADING}" once`);
  t.ok(shared[0]?.body.includes(INSPECTOR_REDIRECT_URI), `the shared section names ${INSPECTOR_REDIRECT_URI}`);
  for (const name of GUIDES) {
    const link = `(${name}.md#${anchorOf(INSPECTOR_SECTION)})`;
    t.ok(shared[0]?.body.includes(link), `the shared section links ${link}`);
  }
});
