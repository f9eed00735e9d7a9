/**
 * A real browser for OAuth logins in tests: headless Debian Chromium driven
 * by playwright-core (no bundled browser builds), plus the loopback
 * `redirect_uri` an MCP host listens on (RFC 8252 §7.3) to receive the code.
 *
 * {@link LoginBrowser.authorize} opens an authorization URL, fills
 * oidc-provider's devInteractions login page (any login, any password) and
 * its consent page, and resolves with the redirect the callback server
 * received. One persistent profile per browser, so the AS session cookie
 * survives between authorizations exactly as in a user's browser.
 *
 * On failure a screenshot and the page's HTML are written to a temp dir (or
 * `$BROWSER_ARTIFACTS_DIR`) and the error names the files; with
 * `BROWSER_SCREENSHOTS=all` every AS page is captured before it is
 * submitted. See DEVELOPERS.md.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium package; `$CHROMIUM_PATH` overrides it (another distro's build). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Flags that work on a machine without network access: the background
 * networking ones stop Chromium's own connections (updates, sync, safe
 * browsing), which fail here with refused connections and slow every page.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Which devInteractions page a step of the login was on. */
export type LoginPage = 'login' | 'consent';

/** One completed authorization. */
export interface LoginResult {
  /** The redirect as the callback server received it (`?code=…&iss=…` or `?error=…`). */
  callback: URL;
  /** The AS pages the browser went through, in order, e.g. `['login', 'consent']`. */
  pages: LoginPage[];
}

/** A running headless Chromium with a loopback callback server. */
export interface LoginBrowser {
  /** `http://127.0.0.1:<port>/callback`: register this as the client's redirect URI. */
  readonly redirectUrl: string;
  /** Every authorization completed so far, in order. */
  readonly history: LoginResult[];
  /**
   * Opens `authorizationUrl` in a new tab, signs in as `user` (default: the
   * browser's user) when the AS asks, consents, and resolves once the
   * callback server has received the redirect. Rejects when the AS redirects
   * back with `?error=` or shows an unexpected page.
   */
  authorize(authorizationUrl: URL, opts?: { user?: string }): Promise<LoginResult>;
  close(): Promise<void>;
}

/** The loopback redirect target: records each hit and answers with a small page. */
async function startCallbackServer(): Promise<{ server: Server; redirectUrl: string; received: URL[] }> {
  const received: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', redirectUrl);
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    received.push(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Signed in</title><p>Authorization finished. You can close this window.</p>');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const redirectUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  return { server, redirectUrl, received };
}

/** One artifacts dir per test process, made on first use. */
let artifacts: Promise<string> | undefined;

/** Where screenshots go: `$BROWSER_ARTIFACTS_DIR`, else a fresh temp dir. */
async function artifactsDir(): Promise<string> {
  const dir = process.env.BROWSER_ARTIFACTS_DIR;
  if (dir) {
    await mkdir(dir, { recursive: true });
    return dir;
  }
  return mkdtemp(join(tmpdir(), 'mcp-gw-browser-'));
}

/** Screenshot + HTML of the page; returns a note naming them (never throws). */
async function savePage(page: Page, label: string): Promise<string> {
  try {
    const dir = (artifacts ??= artifactsDir());
    const base = join(await dir, `${label}-${Date.now()}`);
    await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 5_000 });
    await writeFile(`${base}.html`, await page.content());
    return ` [page ${new URL(page.url()).pathname}; screenshot ${base}.png, HTML ${base}.html]`;
  } catch (err) {
    return ` [no screenshot: ${(err as Error).message.split('\n')[0]}]`;
  }
}

/**
 * Launches headless Chromium with a fresh profile and a callback server.
 *
 * @param opts.user login name typed on the login page (default `alice`)
 * @param opts.timeoutMs per browser action (default 15 s)
 */
export async function startLoginBrowser(opts: { user?: string; timeoutMs?: number } = {}): Promise<LoginBrowser> {
  const defaultUser = opts.user ?? 'alice';
  const timeout = opts.timeoutMs ?? 15_000;
  const callback = await startCallbackServer();
  const profile = await mkdtemp(join(tmpdir(), 'mcp-gw-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout,
    });
  } catch (err) {
    callback.server.close();
    await rm(profile, { recursive: true, force: true });
    throw new Error(
      `cannot start Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH; see DEVELOPERS.md): ` +
        (err as Error).message.split('\n')[0],
    );
  }
  context.setDefaultTimeout(timeout);
  const history: LoginResult[] = [];
  let seq = 0;

  return {
    redirectUrl: callback.redirectUrl,
    history,
    async authorize(authorizationUrl: URL, o = {}): Promise<LoginResult> {
      const user = o.user ?? defaultUser;
      const step = ++seq;
      const before = callback.received.length;
      const page = await context.newPage();
      const pages: LoginPage[] = [];
      try {
        await page.goto(authorizationUrl.href, { waitUntil: 'load' });
        // Each submit ends on the next document: another AS page or the callback.
        for (let hop = 0; hop < 6 && !page.url().startsWith(callback.redirectUrl); hop++) {
          const prompt = page.locator('form input[name="prompt"]');
          if ((await prompt.count()) !== 1) {
            const body = ((await page.locator('body').textContent()) ?? '').trim().slice(0, 300);
            throw new Error(`unexpected page at ${new URL(page.url()).pathname}: ${body}`);
          }
          const kind = await prompt.getAttribute('value');
          if (kind === 'login') {
            await page.locator('input[name="login"]').fill(user);
            await page.locator('input[name="password"]').fill('any password');
          } else if (kind !== 'consent') {
            throw new Error(`unknown interaction prompt ${String(kind)}`);
          }
          pages.push(kind);
          if (process.env.BROWSER_SCREENSHOTS === 'all') {
            process.stderr.write(`browser: ${kind}${await savePage(page, `authorize-${step}-${kind}`)}\n`);
          }
          const loaded = page.waitForEvent('load');
          await page.locator('form button[type="submit"]').click();
          await loaded;
        }
        if (!page.url().startsWith(callback.redirectUrl)) throw new Error('the AS never redirected to the callback');
        // The callback page has loaded, so the server has answered it.
        if (callback.received.length !== before + 1) {
          throw new Error(`the callback server received ${callback.received.length - before} redirects, expected 1`);
        }
        const received = callback.received[before]!;
        const error = received.searchParams.get('error');
        if (error) throw new Error(`AS returned error=${error} (${received.searchParams.get('error_description') ?? ''})`);
        const result = { callback: received, pages };
        history.push(result);
        return result;
      } catch (err) {
        const note = await savePage(page, `authorize-${step}-failed`);
        throw new Error(`browser login failed after pages [${pages.join(', ')}]: ${(err as Error).message}${note}`);
      } finally {
        await page.close().catch(() => undefined);
      }
    },
    async close(): Promise<void> {
      await context.close().catch(() => undefined);
      callback.server.closeAllConnections();
      await new Promise<void>((resolve) => callback.server.close(() => resolve()));
      await rm(profile, { recursive: true, force: true });
    },
  };
}
