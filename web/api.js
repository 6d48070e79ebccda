import { reconnectDelay, STABLE_AFTER_MS } from './state.js';

// Talking to the Alongside server: the account calls over HTTP and one WebSocket
// connection that authenticates, answers requests by id, reconnects by itself and
// tells the page what happened. Nothing here touches the page.

/** An error the server answered with: a stable `code` and a human `message`. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function call(method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch {
    throw new ApiError('offline', 'The server cannot be reached. Please check your connection and try again.');
  }
  if (response.status === 204) return {};
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(error.code || 'internal', error.message || 'Something went wrong. Please try again.');
  }
  return data;
}

const post = (path, body, token) => call('POST', path, body, token);

export const register = (username, password, displayName, invite) =>
  post('/api/v1/register', { username, password, display_name: displayName || undefined, invite });
export const login = (username, password) => post('/api/v1/login', { username, password });
export const logout = (token) => post('/api/v1/logout', null, token);
/** Revokes the token in a request that completes even as the page goes away. */
export function logoutOnLeaving(token) {
  fetch('/api/v1/logout', { method: 'POST', keepalive: true, headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
}
/** `{user, may_create}`: who the token belongs to and what kinds of room they may open. */
export const me = (token) => call('GET', '/api/v1/me', null, token);
/** Erases the account; the password confirms it. */
export const deleteAccount = (token, password) => call('DELETE', '/api/v1/me', { password }, token);
/** Everything the server holds about the member, as a JSON file (a Blob). */
export async function exportData(token) {
  let response;
  try {
    response = await fetch('/api/v1/me/export', { headers: { Authorization: `Bearer ${token}` } });
  } catch {
    throw new ApiError('offline', 'The server cannot be reached. Please check your connection and try again.');
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(data.error?.code || 'internal', data.error?.message || 'Something went wrong. Please try again.');
  }
  // Read whole before saving: a download cut short by the server fails here instead of
  // leaving a broken file.
  const text = await response.text();
  JSON.parse(text);
  return new Blob([text], { type: 'application/json' });
}
/** Support lines for a region (then the international ones); no account needed. */
export const resources = (region) =>
  call('GET', `/api/v1/resources${region ? `?region=${encodeURIComponent(region)}` : ''}`);

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSES = new Set([4001, 4003, 1008, 1009]);

/**
 * One authenticated WebSocket that survives drops.
 *
 * `onEvent(event)` gets every server event; `onState(state, detail)` gets
 * 'connecting' | 'connected' | 'reconnecting' | 'closed'; `onAuthenticated(reply)` runs
 * after every successful `auth` (the first and each reconnect), so the page can catch up.
 */
export class Connection {
  constructor(token, { onEvent, onState, onAuthenticated }) {
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onAuthenticated = onAuthenticated;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = false;
    this.socket = null;
    this.open();
  }

  open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    this.socket = socket;
    this.onState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    socket.addEventListener('open', async () => {
      try {
        const reply = await this.request('auth', { token: this.token });
        // The back-off starts afresh only once a connection has proved stable (see
        // closed()), so a server that closes us again at once is not hammered.
        this.connectedAt = Date.now();
        this.onState('connected');
        await this.onAuthenticated(reply);
      } catch (error) {
        if (error.code === 'unauthenticated') this.stop('closed', { code: 4001 });
      }
    });
    socket.addEventListener('message', (message) => this.receive(message.data));
    socket.addEventListener('close', (close) => this.closed(socket, close.code));
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if ((frame.type === 'ok' || frame.type === 'error') && this.pending.has(frame.id)) {
      const { resolve, reject } = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      if (frame.type === 'ok') resolve(frame);
      else reject(new ApiError(frame.code, frame.message));
      return;
    }
    this.onEvent(frame);
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    for (const { reject } of this.pending.values()) {
      reject(new ApiError('offline', 'The connection dropped; please try again in a moment.'));
    }
    this.pending.clear();
    if (this.stopped) return;
    if (FINAL_CLOSES.has(code)) {
      this.stop('closed', { code });
      return;
    }
    // Back off 1, 2, 4 ... 15 s with jitter, so a restarted server is not stampeded; a
    // connection that lasted counts as a fresh start, one closed soon after does not.
    if (this.connectedAt && Date.now() - this.connectedAt > STABLE_AFTER_MS) this.attempt = 0;
    this.connectedAt = null;
    this.attempt += 1;
    const delay = reconnectDelay(this.attempt, Math.random());
    this.onState('reconnecting', { code, delay });
    this.timer = setTimeout(() => this.open(), delay);
  }

  /** Sends a request; resolves with the `ok` frame or rejects with an ApiError. */
  request(type, fields = {}) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError('offline', 'Not connected right now; please try again in a moment.'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...fields, type, id }));
    });
  }

  stop(state = 'closed', detail = {}) {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.onState(state, detail);
  }
}
