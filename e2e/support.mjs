// What the browser tests share: the real `alongside` binary on a free port over a
// temporary database, accounts made with its CLI, and Debian's Chromium driven by
// playwright-core. Every wait has a timeout.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url).pathname;
export const BINARY = process.env.ALONGSIDE_BIN || join(root, 'target/debug/alongside');
export const SCREENSHOTS = join(root, 'target/e2e');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const WAIT_MS = 10_000;

/** A TCP port that was free a moment ago (the server is restarted on the same one). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** The server binary serving `database` on `port`. */
export class Server {
  constructor(port, database, env = {}) {
    this.port = port;
    this.database = database;
    this.env = env;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** A server on a fresh database; `env` adds settings (`ALONGSIDE_REGISTRATION`...). */
  static async start(env = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'alongside-e2e-'));
    const server = new Server(await freePort(), `sqlite://${join(dir, 'e2e.db')}`, env);
    await server.run();
    return server;
  }

  run() {
    this.process = spawn(BINARY, ['serve', '--listen', `127.0.0.1:${this.port}`, '--database', this.database], {
      env: {
        ...process.env,
        ALONGSIDE_LOG: 'warn',
        ALONGSIDE_REGISTRATIONS_PER_ADDRESS: '0',
        ALONGSIDE_LOGIN_ATTEMPTS_PER_ADDRESS: '0',
        ALONGSIDE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS: '0',
        ALONGSIDE_REQUEST_RATE_PER_S: '0',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not start in time')), WAIT_MS);
      this.process.stdout.on('data', (chunk) => {
        if (String(chunk).includes('alongside listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.process.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    });
  }

  /** SIGTERM, and wait for the process to finish its graceful shutdown. */
  stop() {
    return new Promise((resolve, reject) => {
      if (this.process.exitCode !== null) return resolve();
      const timer = setTimeout(() => reject(new Error('the server did not stop in time')), WAIT_MS);
      this.process.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.process.kill('SIGTERM');
    });
  }

  /** Creates an account with `alongside user create`. */
  createUser(username, password, role = 'member', displayName = username) {
    const args = ['user', 'create', username, '--role', role, '--display-name', displayName, '--database', this.database];
    const result = spawnSync(BINARY, args, { input: `${password}\n`, encoding: 'utf8', timeout: WAIT_MS });
    if (result.status !== 0) throw new Error(`user create ${username} failed: ${result.stderr}`);
  }

  /** Imports a summit programme (`text`, iCalendar) with `alongside summit import`. */
  importProgramme(text, organiser) {
    const dir = mkdtempSync(join(tmpdir(), 'alongside-programme-'));
    const file = join(dir, 'programme.ics');
    writeFileSync(file, text);
    const args = ['summit', 'import', file, '--organiser', organiser, '--database', this.database];
    const result = spawnSync(BINARY, args, { encoding: 'utf8', timeout: WAIT_MS });
    if (result.status !== 0) throw new Error(`summit import failed: ${result.stderr}`);
    return result.stdout;
  }

  /** Makes a one-use invite code with `alongside invite create`; returns it. */
  createInvite() {
    const args = ['invite', 'create', '--database', this.database];
    const result = spawnSync(BINARY, args, { encoding: 'utf8', timeout: WAIT_MS });
    if (result.status !== 0) throw new Error(`invite create failed: ${result.stderr}`);
    return result.stdout.split(/\s/)[0];
  }

  /** Logs in over HTTP (for a non-browser client). */
  async token(username, password) {
    const response = await fetch(`${this.url}/api/v1/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    if (!response.ok) throw new Error(`login ${username}: ${response.status}`);
    return (await response.json()).token;
  }
}

/** Debian's Chromium, headless, with nothing that reaches outside this machine. */
export function launchBrowser() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh browser profile (its own storage) with a page; page errors fail the test.
 * `options` are the context's (a phone's viewport, a colour scheme).
 */
export async function newPage(browser, errors, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 820 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => {
    // Where it came from, for whoever reads the failure.
    console.error('page error at', page.url(), error.stack);
    errors.push(error.message);
  });
  return page;
}

export async function logIn(page, server, username, password) {
  await page.goto(server.url);
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#connection[data-state=connected]');
}

/** A minimal protocol client (Node's WebSocket), for sending while pages are away. */
export async function socketClient(server, token) {
  const socket = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
  const replies = new Map();
  let nextId = 1;
  socket.addEventListener('message', (message) => {
    const frame = JSON.parse(message.data);
    if (replies.has(frame.id)) replies.get(frame.id)(frame);
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the protocol client could not connect in time')), WAIT_MS);
    socket.addEventListener('open', () => (clearTimeout(timer), resolve()), { once: true });
    socket.addEventListener('error', (error) => (clearTimeout(timer), reject(error)), { once: true });
  });
  const request = (type, fields = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`${type}: no reply`)), WAIT_MS);
      replies.set(id, (frame) => {
        clearTimeout(timer);
        if (frame.type === 'ok') resolve(frame);
        else reject(new Error(`${type}: ${frame.code} ${frame.message}`));
      });
      socket.send(JSON.stringify({ ...fields, type, id }));
    });
  await request('auth', { token });
  return { request, close: () => socket.close() };
}

const AXE_SOURCE = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');

/**
 * The WCAG 2.2 A and AA violations axe-core finds on the page as it is now, each as
 * "rule: target (summary)", so a failing assertion says what to fix.
 */
export async function accessibilityViolations(page) {
  // Evaluated through the debugging protocol, so the page's script policy stays as it is.
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } }),
  );
  return result.violations.flatMap((violation) =>
    violation.nodes.map((node) => `${violation.id}: ${node.target.join(' ')} (${node.failureSummary.split('\n')[1]?.trim()})`),
  );
}

/** From now on, the page keeps the type of every request it sends in `window.sentTypes`. */
export async function recordRequests(page) {
  await page.evaluate(() => {
    window.sentTypes = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      window.sentTypes.push(JSON.parse(data).type);
      return send.call(this, data);
    };
  });
}
