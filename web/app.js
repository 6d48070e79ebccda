// The Alongside web client: accounts, rooms and live messages. The pure state is in
// state.js, the moderator tools in moderation.js, page helpers in ui.js.
//
// State lives in `state`; the page is drawn from it. Every message is kept once per
// seq, so live events, history pages and catch-up after a reconnect merge without
// duplicates, and a gap in seqs is filled from history, so nothing goes missing.

import { Connection, deleteAccount, exportData, login, logout, logoutOnLeaving, me, register } from './api.js';
import { careAlertArrived, installCare, openSupport } from './care.js';
import {
  blockAction,
  clearComposerWarning,
  composerWarning,
  hiddenElement,
  installWarnings,
  lineOf,
  loadBlocks,
  openSetCw,
  warnedBody,
} from './warnings.js';
import { $, fill, h } from './dom.js';
import { installModeration, memberActions, moderatorActions, refreshSanctions, reportArrived } from './moderation.js';
import { installMenu, menuOpen, openMenu, quiet, roving, settle } from './menu.js';
import { appealArrived, appealResolved, installRecord } from './record.js';
import { installGroups, inviteCode, joinPending, joinRefused, joinRequested, privacyFacts, privateBadge } from './groups.js';
import { RoomViews, Timeline, unsentFor } from './state.js';
import { installSummit, questionArrived, renderProgramme, renderSummit, votesArrived } from './summit.js';
import { plainMessage } from './words.js';
import { announce, confirmAction, dayOf, failed, formatClock, formatTime, formatZoned, notify, timeZone, untilText } from './ui.js';

/** Where "Quick exit" goes: an ordinary, neutral page. */
/** Where quick exit goes: the operator's choice (`quick_exit_url`), set in the page. */
const NEUTRAL_PAGE = document.querySelector('meta[name=alongside-quick-exit]')?.content || 'https://www.bbc.co.uk/weather';
/** The token lives only for this tab (cleared on logout and quick exit), never in a URL. */
const TOKEN_KEY = 'alongside.token';
const DRAFTS_KEY = 'alongside.drafts';
const ROOM_KEY = 'alongside.room';
const OUTBOX_KEY = 'alongside.outbox';
const NOTIFY_KEY = 'alongside.notify';
/** Longest message the server takes, in characters. */
const MAX_BODY_CHARS = 4000;
const PAGE = 50;
/** Most messages kept in the page at once; older ones come back with "load earlier". */
const MAX_RENDERED = 200;
/** Pages of catch-up after a reconnect before the page starts again from the latest. */
const MAX_CATCH_UP_PAGES = 3;
/** Members listed at first (online ones come first); "Show more members" pages on. */
const MEMBERS_PAGE = 200;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
  connection: null,
  rooms: new Map(), // name → Room
  joined: new Set(), // names of rooms I am a member of
  views: new RoomViews(), // name → what the page keeps for that room (state.js)
  current: null,
  unsent: null, // { room, body, client_msg_id } of a send not yet acknowledged
  reactions: [], // the emoji this server allows, from the `auth` reply
  replyTo: null, // { room, seq } of the message the next send answers
};

/** The room's view, made on first use (a room opened, or heard from). */
const view = (room) => state.views.ensure(room);

installModeration(state, { canModerate, memberOf, deleteMessage, jumpTo });
installSummit(state, { view });
installCare(state, { jumpTo });
installRecord(state);
installGroups(state, { openRoom: (name) => openRoom(name) });
installWarnings(state, { addMessage: (message) => addMessage(message, { live: false }), refreshRoom });
installMenu();
roving($('#messages'), '.message', '.actions-button');

// ---------------------------------------------------------------------------------
// Quick exit
// ---------------------------------------------------------------------------------

function quickExit() {
  // The token is revoked too (a request that outlives the page), so nobody who picks up
  // the device afterwards can use it.
  if (state.token) logoutOnLeaving(state.token);
  sessionStorage.clear();
  if (state.connection) state.connection.stop();
  clearTimeout(readTimer);
  document.title = 'Weather';
  document.body.replaceChildren();
  location.replace(NEUTRAL_PAGE);
}

let lastEscape = 0;
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  // Esc in a dialog or a menu closes it; it must not count towards leaving (closing the
  // report dialog and pressing Esc again would otherwise lose the report).
  if (event.defaultPrevented || menuOpen() || document.querySelector('dialog[open]')) {
    lastEscape = 0;
    return;
  }
  const now = Date.now();
  if (now - lastEscape < 1000) quickExit();
  lastEscape = now;
});
$('#quick-exit').addEventListener('click', quickExit);

// ---------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------

function showAuth() {
  $('#auth-view').hidden = false;
  $('#app-view').hidden = true;
  $('#logout').hidden = true;
  $('#whoami').hidden = true;
  setConnection('offline');
}

$('#login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const reply = await login(form.username.value, form.password.value);
    form.reset();
    start(reply.token);
    // Focus goes where the page now starts, not to the hidden form's remains.
    $('#rooms-title').focus();
  } catch (error) {
    failed(error);
  }
});

$('#register-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    await register(form.username.value, form.password.value, form.display_name.value.trim(), inviteCode());
    const reply = await login(form.username.value, form.password.value);
    form.reset();
    start(reply.token);
    $('#rooms-title').focus();
  } catch (error) {
    failed(error);
  }
});

$('#logout').addEventListener('click', async () => {
  const token = state.token;
  endSession();
  try {
    await logout(token);
  } catch {
    // The token is gone from this page either way.
  }
});

function endSession(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(DRAFTS_KEY);
  sessionStorage.removeItem(ROOM_KEY);
  sessionStorage.removeItem(OUTBOX_KEY);
  sessionStorage.removeItem(NOTIFY_KEY);
  $('#notify-mentions').checked = false;
  state.token = null;
  if (state.connection) state.connection.stop();
  state.connection = null;
  state.me = null;
  state.rooms.clear();
  state.joined.clear();
  state.views.clear();
  state.current = null;
  showAuth();
  if (message) notify(message);
}

function start(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#auth-view').hidden = true;
  $('#app-view').hidden = false;
  $('#logout').hidden = false;
  state.connection = new Connection(token, { onEvent, onState: setConnection, onAuthenticated });
}

const CONNECTION_TEXT = {
  offline: 'Not connected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection lost: reconnecting…',
  closed: 'Disconnected',
};

function setConnection(connection, detail = {}) {
  const status = $('#connection');
  // After a quick exit the page is blank while the browser leaves: nothing to show.
  if (!status) return;
  status.dataset.state = connection;
  status.textContent = CONNECTION_TEXT[connection];
  if (connection === 'closed' && detail.code === 4001) endSession('Your session has ended. Please log in again.');
  if (connection === 'closed' && detail.code === 4003) {
    endSession('This account has been banned from the server. If you think this is a mistake, contact the organisers.');
  }
}

// ---------------------------------------------------------------------------------
// After each (re)authentication: refresh rooms and catch up every joined room.
// ---------------------------------------------------------------------------------

async function onAuthenticated(reply) {
  state.me = reply.user;
  state.joined = new Set(reply.rooms);
  state.reactions = reply.reactions || [];
  fill($('#whoami'), `Signed in as ${reply.user.display_name}`);
  $('#whoami').hidden = false;
  showAccountTools(reply.may_create);
  await loadBlocks();
  await refreshRooms();
  for (const room of state.joined) {
    if (state.views.has(room)) await catchUp(room);
  }
  // After a reload, the room that was open opens again.
  const reopen = state.current || sessionStorage.getItem(ROOM_KEY);
  if (reopen && state.joined.has(reopen)) await openRoom(reopen);
  await flushOutbox();
}

$('#export-data').addEventListener('click', async () => {
  const button = $('#export-data');
  button.disabled = true;
  try {
    const file = await exportData(state.token);
    const url = URL.createObjectURL(file);
    const link = h('a', { href: url, download: `alongside-${state.me.username}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    notify('Your data is downloading as a JSON file.');
  } catch (error) {
    failed(error);
  } finally {
    button.disabled = false;
  }
});

$('#delete-account').addEventListener('click', () => {
  const dialog = $('#delete-dialog');
  $('#delete-password').value = '';
  $('#delete-error').hidden = true;
  dialog.showModal();
});

$('#delete-form').addEventListener('submit', async (event) => {
  const dialog = $('#delete-dialog');
  if (event.submitter?.value !== 'confirm') return;
  // The dialog stays open until the server has answered.
  event.preventDefault();
  try {
    await deleteAccount(state.token, $('#delete-password').value);
    dialog.close();
    endSession('Your account has been deleted. Take care.');
  } catch (error) {
    const problem = $('#delete-error');
    // The server says whether the password was wrong or the session is over.
    problem.textContent = error.code === 'unauthenticated' ? error.message : plainMessage(error.code, error.message);
    problem.hidden = false;
  }
});

/** Reads a room's latest messages again and puts them in place (after an unblock). */
async function refreshRoom(room) {
  try {
    const reply = await state.connection.request('history', { room });
    for (const message of reply.messages) addMessage(message, { live: false });
  } catch (error) {
    failed(error);
  }
}

async function refreshRooms() {
  try {
    // The list comes a page at a time (by name); `more` says another page follows.
    const rooms = new Map();
    let after;
    for (;;) {
      const reply = await state.connection.request('rooms', { limit: 200, after });
      for (const room of reply.rooms) rooms.set(room.name, room);
      if (!reply.more || reply.rooms.length === 0) break;
      after = reply.rooms[reply.rooms.length - 1].name;
    }
    state.rooms = rooms;
    renderRoomList();
  } catch (error) {
    failed(error);
  }
}

/**
 * Fetches what came after the last message seen, a page at a time, up to a few pages;
 * after a longer absence the room starts again from its latest messages instead.
 */
async function catchUp(room) {
  const roomView = view(room);
  let after = roomView.timeline.highest;
  for (let page = 0; page < MAX_CATCH_UP_PAGES; page++) {
    const reply = await state.connection.request('history', { room, after, limit: 100 });
    // As if live: the room stays at the bottom if she was there, or counts what is new.
    for (const message of reply.messages) addMessage(message, { live: true });
    // A page may hold fewer than asked when its messages are long: `more` decides.
    if (!reply.more || reply.messages.length === 0) return;
    after = reply.messages[reply.messages.length - 1].seq;
  }
  forget(roomView);
  if (room === state.current) $('#messages').replaceChildren();
  const reply = await state.connection.request('history', { room, limit: PAGE });
  for (const message of reply.messages) addMessage(message, { live: false });
  if (room === state.current) renderRoom();
}

/** Drops what a room's view holds (its messages, their elements, the quotes awaited). */
function forget(roomView) {
  roomView.timeline = new Timeline();
  roomView.elements = new Map();
  roomView.quoting = new Map();
}

// ---------------------------------------------------------------------------------
// Room list
// ---------------------------------------------------------------------------------

/** A summit's window in words, in the member's time zone, named ("GMT+1", "BST"). */
function summitState(room) {
  if (room.kind !== 'summit') return null;
  const now = Date.now();
  // A summit run by its phases: before its first phase, and after its last.
  if (room.phase === 'scheduled') {
    const opens = room.schedule?.[0]?.at || room.session_starts_at;
    return { open: false, text: opens ? `Opens ${formatZoned(opens)}` : 'Not begun' };
  }
  if (room.phase === 'closed') return { open: false, text: 'Ended' };
  if (room.starts_at && now < Date.parse(room.starts_at)) return { open: false, text: `Opens ${formatZoned(room.starts_at)}` };
  if (room.ends_at && now >= Date.parse(room.ends_at)) return { open: false, text: `Closed ${formatZoned(room.ends_at)}` };
  return { open: true, text: room.ends_at ? `Open until ${formatZoned(room.ends_at)}` : 'Open now' };
}

function renderRoomList() {
  const items = [...state.rooms.values()].map((room) => {
    const summit = summitState(room);
    const current = room.name === state.current;
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'room-button',
          'aria-current': current ? 'page' : null,
          onclick: () => (state.joined.has(room.name) ? openRoom(room.name) : previewRoom(room.name)),
        },
        h('span', { class: 'room-name' }, `#${room.name}`),
        room.topic ? h('span', { class: 'room-topic' }, room.topic) : null,
        h(
          'span',
          { class: 'room-meta' },
          `${room.members_online} online`,
          summit ? h('span', { class: summit.open ? 'badge open' : 'badge closed' }, `Summit · ${summit.text}`) : null,
          privateBadge(room),
          room.capacity ? ` · up to ${room.capacity} members` : null,
          state.joined.has(room.name) ? ' · joined' : null,
        ),
        unreadBadges(room),
      ),
    );
  });
  fill($('#room-list'), items.length ? items : h('li', { class: 'empty' }, 'No rooms yet.'));
  renderProgramme();
}

/**
 * What a room is before joining it: joining shows the member to the room and the room
 * to the member, so it is a choice, not a side effect of a click.
 */
function previewRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  const summit = summitState(room);
  $('#no-room').hidden = true;
  $('#room-content').hidden = true;
  $('#room-preview').hidden = false;
  fill($('#preview-title'), `#${room.name}`);
  fill($('#preview-topic'), room.topic || '');
  fill(
    $('#preview-facts'),
    [
      `${room.members_online} online now`,
      summit ? `Summit: ${summit.text}` : null,
      room.capacity ? `Up to ${room.capacity} members` : null,
      room.locked ? 'Locked: only moderators can post' : null,
      ...privacyFacts(room),
    ]
      .filter(Boolean)
      .join(' · '),
  );
  fill($('#preview-join'), room.visibility === 'private' ? `Ask to join #${room.name}` : `Join #${room.name}`);
  $('#preview-join').onclick = () => openRoom(room.name);
  $('#preview-join').focus();
}

$('#preview-cancel').addEventListener('click', () => {
  $('#room-preview').hidden = true;
  if (state.current) $('#room-content').hidden = false;
  else $('#no-room').hidden = false;
});

/** "3 new" and "@1" beside a room with unread messages and mentions. */
function unreadBadges(room) {
  if (!room.unread) return null;
  const count = room.unread >= 999 ? '999+' : String(room.unread);
  return h(
    'span',
    { class: 'unread' },
    h('span', { class: 'badge new', 'aria-label': `${count} unread` }, `${count} new`),
    room.mentions_unread
      ? h('span', { class: 'badge mention', 'aria-label': `${room.mentions_unread} mentioning you` }, `@${room.mentions_unread}`)
      : null,
  );
}

// ---------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------

$('#search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const query = $('#search-input').value.trim();
  const panel = $('#search-results');
  if (!query) {
    panel.hidden = true;
    return;
  }
  try {
    const reply = await state.connection.request('search', { query, limit: 20 });
    const items = reply.messages.map((message) =>
      h(
        'li',
        {},
        h(
          'button',
          { type: 'button', class: 'search-hit', onclick: () => openRoom(message.room) },
          h('span', { class: 'meta' }, message.hidden ? `#${message.room}` : `#${message.room} · ${message.author.display_name} · ${formatTime(message.ts)}`),
          h('span', { class: 'body' }, snippet(lineOf(message))),
        ),
      ),
    );
    fill(
      panel,
      h('p', {}, reply.messages.length ? `Found in your rooms (${reply.messages.length}${reply.next ? '+' : ''}):` : 'Nothing found in your rooms.'),
      items.length ? h('ul', { class: 'search-list' }, items) : null,
      h('button', { type: 'button', class: 'small', onclick: () => { panel.hidden = true; } }, 'Close results'),
    );
    panel.hidden = false;
  } catch (error) {
    failed(error);
  }
});

// What screen readers hear of live messages: short, and one announcement for a burst
// (a busy room must not become a stream of speech).
let heard = [];
let heardTimer = null;

function announceMessage(message) {
  heard.push(message);
  if (heardTimer) return;
  heardTimer = setTimeout(() => {
    heardTimer = null;
    const burst = heard;
    heard = [];
    if (burst.length === 1) {
      const [only] = burst;
      announce(only.hidden ? 'A hidden message.' : `${only.author.display_name}: ${snippet(lineOf(only), 80)}`);
    } else {
      const names = [...new Set(burst.filter((m) => !m.hidden).map((m) => m.author.display_name))];
      const who = names.length <= 2 ? names.join(' and ') : `${names.slice(0, 2).join(', ')} and others`;
      announce(`${burst.length} new messages from ${who}.`);
    }
  }, 700);
}

let readTimer = null;

/** Moves the read marker to the newest message of the room on screen, soon (one request a second at most). */
function markRead() {
  if (readTimer) return;
  readTimer = setTimeout(async () => {
    readTimer = null;
    const room = state.current;
    const seq = room && state.views.get(room)?.timeline.highest;
    if (!seq || document.visibilityState === 'hidden') return;
    const known = state.rooms.get(room);
    if (known) Object.assign(known, { unread: 0, mentions_unread: 0 });
    renderRoomList();
    await state.connection.request('mark_read', { room, seq }).catch(() => {});
  }, 1000);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') markRead();
});

// ---------------------------------------------------------------------------------
// Opening a room
// ---------------------------------------------------------------------------------

async function openRoom(name) {
  try {
    const reply = await state.connection.request('join', { room: name });
    if (reply.pending) {
      joinPending(name);
      return;
    }
    // The page's own work for a switch, from the reply to a drawn room (measured by the
    // browser tests with the Performance API).
    const started = performance.now();
    state.joined.add(name);
    state.rooms.set(name, reply.room);
    const roomView = view(name);
    roomView.online = new Map(reply.online.map((user) => [user.username, user]));
    const switching = state.current !== name;
    state.current = name;
    sessionStorage.setItem(ROOM_KEY, name);
    // The reply holds the latest messages. What the page held before them is kept only if
    // it joins up; a gap (a long absence) starts the room again from the latest, rather
    // than downloading everything in between.
    const oldest = reply.messages.length ? reply.messages[0].seq : null;
    if (oldest !== null && roomView.timeline.size && roomView.timeline.highest < oldest - 1) forget(roomView);
    if (switching) {
      // Where she stopped reading: the first unread message drawn gets the "new" line.
      const unread = reply.room.unread || 0;
      roomView.firstUnread = null;
      // Each room keeps its own unsent words: a sentence meant for one group never sits
      // in another's composer.
      $('#message-input').value = draftOf(name);
      renderOutbox();
      tooLong($('#message-input').value);
      countNewBelow(0);
      // Elements drawn on an earlier visit are used again, unless their message changed.
      const kept = roomView.elements;
      for (const message of reply.messages) {
        noteOwnReactions(roomView, message);
        if (roomView.timeline.add(message) === 'changed') kept.delete(message.seq);
        // Replies that quoted this message before it was held are drawn again.
        for (const replySeq of roomView.quoting.get(message.seq) || []) kept.delete(replySeq);
        roomView.quoting.delete(message.seq);
      }
      // Only the latest messages are drawn; the rest wait for "load earlier".
      roomView.elements = new Map();
      const latest = roomView.timeline.slice(MAX_RENDERED);
      if (unread > 0 && latest.length) roomView.firstUnread = latest[Math.max(0, latest.length - unread)].seq;
      const list = $('#messages');
      if (list.rovingActive) quiet(list.rovingActive);
      list.rovingActive = null;
      list.replaceChildren(
        ...latest.map((message) => {
          const element = kept.get(message.seq) || messageElement(name, message);
          element.classList.toggle('first-unread', message.seq === roomView.firstUnread);
          element.classList.remove('sought');
          roomView.elements.set(message.seq, element);
          return element;
        }),
      );
      for (const element of $('#messages').children) markDay(element);
      settle($('#messages'), '.message');
    } else {
      for (const message of reply.messages) addMessage(message, { live: false });
    }
    refreshMembers(name);
    // Open is read: the counts go at once, the server hears within a second.
    Object.assign(state.rooms.get(name), { unread: 0, mentions_unread: 0 });
    markRead();
    // The server says whether we moderate this room; the page does not guess.
    roomView.moderator = reply.room.my_role === 'moderator' || reply.room.my_role === 'owner';
    // A full summit let us in as a viewer: reading, asking and voting, never posting.
    roomView.viewer = Boolean(reply.viewer);
    renderRoom();
    renderRoomList();
    // After renderRoom: a list that was hidden has no height to scroll until then. The
    // room opens at the first unread message, or at the bottom.
    if (switching) scrollToStart(roomView);
    if (switching) $('#message-input').focus();
    if (switching) performance.measure('alongside:room-switch', { start: started });
  } catch (error) {
    failed(error);
  }
}

/** Shows what the server says this account may do: create rooms (of which kinds), admin. */
function showAccountTools(mayCreate) {
  $('#create-room').hidden = mayCreate.length === 0;
  for (const option of $('#room-kind').options) option.disabled = !mayCreate.includes(option.value);
  const select = $('#room-kind');
  if (select.selectedOptions[0]?.disabled) select.value = mayCreate[0] || select.value;
  $('#summit-fields').hidden = select.value !== 'summit';
  $('#admin-panel').hidden = state.me.role !== 'admin';
  $('#network-panel').hidden = state.me.role === 'member';
}

function renderRoom() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  const roomView = view(room.name);
  $('#no-room').hidden = true;
  $('#room-preview').hidden = true;
  $('#room-content').hidden = false;
  renderReplying();
  fill($('#room-title'), `#${room.name}`);
  fill($('#room-topic-text'), room.topic || '');
  const summit = summitState(room);
  const status = [
    summit ? `Summit: ${summit.text}` : null,
    room.locked ? 'Locked: only moderators can post' : null,
    room.slow_mode_s ? `Slow mode: one message every ${room.slow_mode_s} s` : null,
    hostText(room),
    ...privacyFacts(room),
  ].filter(Boolean);
  fill($('#room-status'), status.join(' · '));
  $('#mod-tools').hidden = !roomView.moderator;
  $('#slow-mode').value = String(room.slow_mode_s);
  if (!$('#slow-mode').value) $('#slow-mode').value = '0';
  fill($('#toggle-lock'), room.locked ? 'Unlock room' : 'Lock room');
  fill($('#toggle-host-rule'), room.requires_host ? 'Open without a host' : 'Require a host');
  const onDuty = (room.hosts_on_duty || []).includes(state.me.username);
  fill($('#toggle-duty'), onDuty ? 'Go off duty' : 'Go on duty');
  $('#toggle-duty').setAttribute('aria-pressed', String(onDuty));
  const shownFrom = Number($('#messages').firstElementChild?.dataset.seq || 0);
  $('#load-earlier').hidden = !shownFrom || shownFrom <= 1;
  renderComposerNotice();
  renderSummit(room, roomView);
  renderMembers();
}

/** "Hosted by Olivia" or "Waiting for a host", for a room that needs one. */
function hostText(room) {
  if (!room.requires_host) return null;
  const hosts = room.hosts_on_duty || [];
  if (!hosts.length) return 'Waiting for a host';
  const names = hosts.map((name) => view(room.name).online.get(name)?.display_name || name);
  return `Hosted by ${names.join(', ')}`;
}

/** What a summit's phase means for this member's composer, or null when they may post. */
function phaseNotice(room, roomView) {
  const speaker = (room.speakers || []).includes(state.me.username);
  if (roomView.viewer) return 'You are viewing: the summit was full when you came. You can read along, and ask and vote while questions are taken.';
  switch (room.phase) {
    case 'scheduled': return 'This event has not begun yet: you can read, and post when it opens.';
    case 'closed': return 'This event has ended: it is kept here to read.';
    case 'lobby': return roomView.moderator ? null : 'The lobby: the hosts post announcements; the conversation opens later.';
    case 'stage':
    case 'qa': return roomView.moderator || speaker ? null : 'The speakers have the floor: you can read along and ask a question.';
    default: return null;
  }
}

function renderComposerNotice() {
  const room = state.rooms.get(state.current);
  const roomView = view(state.current);
  const notice = $('#composer-notice');
  let text = null;
  if (roomView.muted && roomView.muted.text) {
    text = roomView.muted.text; // the server's own sentence, with until when and why
  } else if (roomView.muted) {
    const why = roomView.muted.reason ? ` Reason: ${roomView.muted.reason}` : '';
    text = `You are muted in this room ${untilText(roomView.muted.until)}.${why}`;
  } else if (room.locked && !roomView.moderator) {
    text = 'This room is locked for now: you can read, but not post.';
  } else if (room.requires_host && !(room.hosts_on_duty || []).length && !roomView.moderator) {
    text = 'Waiting for a host: you can read, and post once one of the room’s hosts is here.';
  } else {
    text = phaseNotice(room, roomView);
  }
  notice.hidden = !text;
  fill(notice, text || '');
}

const RANK = { member: 0, moderator: 1, organiser: 2, admin: 3 };

/**
 * Whether this page's user can act on `member` in the room: a moderator of the room,
 * on a plain member of it whose global role is lower than their own (a room's own
 * moderators count as moderators here). The server checks again; the page only leaves
 * out the buttons that would fail.
 */
function canModerate(roomView, member) {
  if (!roomView.moderator || member.username === state.me.username) return false;
  if (member.room_role === 'moderator' || member.room_role === 'owner') return false;
  return RANK[member.role] < Math.max(RANK[state.me.role], RANK.moderator);
}

/** Everyone in the room, online first (the server's order), with role and mute. */
function renderMembers() {
  const roomView = view(state.current);
  const members = roomView.members || [...roomView.online.values()].map((user) => ({ ...user, online: true }));
  const items = members.map((member) =>
    h(
      'li',
      { class: member.online ? 'online' : 'away' },
      h('span', { class: 'presence' }, member.online ? 'online' : 'away'),
      h(
        'button',
        { type: 'button', class: 'who', onclick: () => openProfile(state.current, member) },
        h('span', { class: 'member-name' }, member.display_name),
        h('span', { class: 'handle' }, `@${member.username}`),
      ),
      roleBadge(member.role),
      member.room_role && member.room_role !== 'member' ? roleBadge(member.room_role, 'room ') : null,
      (state.rooms.get(state.current)?.hosts_on_duty || []).includes(member.username)
        ? h('span', { class: 'role role-host' }, 'hosting now')
        : null,
      member.muted ? h('span', { class: 'muted-mark' }, member.muted_until ? `muted until ${formatTime(member.muted_until)}` : 'muted') : null,
      moderatorActions(roomView, member),
    ),
  );
  fill(
    $('#member-list'),
    items.length ? items : h('li', { class: 'empty' }, 'Nobody else is here right now.'),
    roomView.membersMore
      ? h('li', {}, h('button', { type: 'button', class: 'small', onclick: () => moreMembers(state.current) }, 'Show more members'))
      : null,
  );
}

/** The next page of a big room's members, after the last one listed. */
async function moreMembers(room) {
  const roomView = view(room);
  const after = roomView.members?.at(-1)?.username;
  try {
    const reply = await state.connection.request('members', { room, limit: MEMBERS_PAGE, after });
    const known = new Set(roomView.members.map((member) => member.username));
    roomView.members.push(...reply.members.filter((member) => !known.has(member.username)));
    roomView.membersMore = reply.more;
    if (room === state.current) renderMembers();
  } catch (error) {
    failed(error);
  }
}

/**
 * Applies one member's change (`null`: no longer a member) to a room's list as the
 * events tell it, so a busy room's comings and goings cost no requests; only someone
 * the list does not know yet (a new member) makes the page ask the server.
 */
function memberChanged(room, username, change) {
  const members = state.views.get(room)?.members;
  if (!members) return; // not loaded yet: it is asked for when the room opens
  const index = members.findIndex((member) => member.username === username);
  if (index < 0) {
    if (change) refreshMembers(room);
    return;
  }
  if (change) Object.assign(members[index], change);
  else members.splice(index, 1);
  // The server's order: online first, then by username.
  members.sort((a, b) => Number(b.online) - Number(a.online) || (a.username < b.username ? -1 : Number(a.username > b.username)));
  if (room === state.current) renderMembers();
}

const memberTimers = new Map();

/** Asks the server for the room's members, soon (one request for a burst of changes). */
function refreshMembers(room) {
  if (memberTimers.has(room)) return;
  memberTimers.set(
    room,
    setTimeout(async () => {
      memberTimers.delete(room);
      if (!state.joined.has(room)) return;
      try {
        const reply = await state.connection.request('members', { room, limit: MEMBERS_PAGE });
        view(room).members = reply.members;
        view(room).membersMore = reply.more;
        if (room === state.current) renderMembers();
      } catch {
        // The next change or room switch asks again.
      }
    }, 250),
  );
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

/** Replies drawn before the message they quote was held are drawn again with it. */
function requote(room, seq) {
  const roomView = view(room);
  const replies = roomView.quoting.get(seq);
  if (!replies) return;
  roomView.quoting.delete(seq);
  for (const replySeq of replies) {
    const reply = roomView.timeline.get(replySeq);
    if (!reply) continue;
    if (room === state.current && roomView.elements.get(replySeq)?.isConnected) renderMessage(room, reply);
    else roomView.elements.delete(replySeq);
  }
}

/** The server says which reactions are this member's own (after a reload, too). */
function noteOwnReactions(roomView, message) {
  for (const emoji of message.my_reactions || []) roomView.reacted.add(`${message.seq} ${emoji}`);
}

/** Merges one message; draws it if its room is open. Returns false for a duplicate. */
function addMessage(message, { live }) {
  const roomView = view(message.room);
  noteOwnReactions(roomView, message);
  if (roomView.timeline.add(message) === 'duplicate') return false;
  if (message.room === state.current) renderMessage(message.room, message, live);
  // A room not on screen keeps its drawn elements for the next visit; a changed
  // message's element is drawn again then.
  else roomView.elements.delete(message.seq);
  requote(message.room, message.seq);
  return true;
}

function renderMessage(room, message, live = false) {
  const roomView = view(room);
  const list = $('#messages');
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const element = messageElement(room, message);
  const old = roomView.elements.get(message.seq);
  roomView.elements.set(message.seq, element);
  if (old && old.isConnected) {
    old.replaceWith(element);
  } else {
    // Keep seq order: insert before the element of the next seq held (O(log n)).
    const next = roomView.timeline.next(message.seq);
    const before = next === null ? null : roomView.elements.get(next);
    list.insertBefore(element, before && before.isConnected ? before : null);
  }
  markDay(element);
  if (element.nextElementSibling) markDay(element.nextElementSibling);
  if (live && nearBottom) {
    // Reading at the bottom of a busy room: the oldest drawn messages make way.
    while (list.children.length > MAX_RENDERED) {
      roomView.elements.delete(Number(list.firstElementChild.dataset.seq));
      list.firstElementChild.remove();
      $('#load-earlier').hidden = false;
    }
    list.scrollTop = list.scrollHeight;
  } else if (live && !old && message.author?.username !== state.me?.username) countNewBelow(1);
  settle(list, '.message');
}

/** A message that starts a new day (or the list) shows the day above it. */
function markDay(element) {
  // A hidden message has no time: the day runs on past it.
  if (!element.dataset.day) return;
  let previous = element.previousElementSibling;
  while (previous && !previous.dataset.day) previous = previous.previousElementSibling;
  element.classList.toggle('new-day', !previous || previous.dataset.day !== element.dataset.day);
}

/** Opens a room's list at its first unread message, or at the bottom. */
function scrollToStart(roomView) {
  const list = $('#messages');
  const first = roomView.firstUnread && roomView.elements.get(roomView.firstUnread);
  if (first && first.isConnected) {
    list.scrollTop = first.offsetTop - 8;
    const below = list.scrollHeight - list.scrollTop - list.clientHeight;
    if (below > 80) countNewBelow(0);
  } else {
    list.scrollTop = list.scrollHeight;
  }
}

// Messages that arrived while the member was reading further up: a bar says how many,
// and takes them to the latest.
let newBelow = 0;

function countNewBelow(n) {
  newBelow = n === 0 ? 0 : newBelow + n;
  const bar = $('#new-below');
  const list = $('#messages');
  if (!bar || !list) return;
  // Far up with nothing new: the bar still offers the way back down.
  const farUp = list.scrollHeight - list.scrollTop - list.clientHeight > 2 * list.clientHeight;
  bar.hidden = newBelow === 0 && !farUp;
  bar.textContent = newBelow ? `${newBelow} new message${newBelow === 1 ? '' : 's'} ↓` : 'Jump to latest ↓';
}

$('#new-below').addEventListener('click', () => {
  const list = $('#messages');
  list.scrollTop = list.scrollHeight;
  countNewBelow(0);
});

let scrollCheck = null;
$('#messages').addEventListener('scroll', () => {
  // Once a frame at most: reading layout on every scroll event would stutter.
  if (scrollCheck) return;
  scrollCheck = requestAnimationFrame(() => {
    scrollCheck = null;
    const list = $('#messages');
    if (list.scrollHeight - list.scrollTop - list.clientHeight < 80) countNewBelow(0);
    else if (!newBelow) countNewBelow(0);
  });
});

function messageElement(room, message) {
  if (message.hidden) return hiddenElement(room, message);
  const mine = state.me && message.author.username === state.me.username;
  const roomView = view(room);
  const name = message.author.display_name;
  const classes = ['message'];
  if (mine) classes.push('mine');
  if (!mine && state.me && (message.mentions || []).includes(state.me.username)) classes.push('names-me');
  if (roomView.firstUnread === message.seq) classes.push('first-unread');
  // In a summit, the speakers' words stand out from the rest: they are the session.
  const speaking = (state.rooms.get(room)?.speakers || []).includes(message.author.username);
  if (speaking) classes.push('from-speaker');
  const element = h(
    'li',
    { class: classes.join(' '), dataset: { seq: message.seq, day: dayOf(message.ts) } },
    h(
      'p',
      { class: 'meta' },
      // The username beside the chosen name, and a badge drawn by the page rather than
      // typed: nobody can pass as someone else, or as an organiser, by their name.
      h(
        'button',
        { type: 'button', class: 'who', onclick: () => openProfile(room, message.author) },
        h('span', { class: 'author' }, name),
        h('span', { class: 'handle' }, `@${message.author.username}`),
      ),
      roleBadge(message.author.role),
      speaking ? h('span', { class: 'role role-speaker' }, 'speaker') : null,
      h('time', { datetime: message.ts, title: formatTime(message.ts) }, formatClock(message.ts)),
      message.edited_at && !message.deleted
        ? h('span', { class: 'edited', title: `Edited at ${formatClock(message.edited_at)}` }, 'edited')
        : null,
      message.deleted
        ? null
        : h(
            'button',
            {
              type: 'button',
              class: 'actions-button',
              'aria-haspopup': 'menu',
              'aria-expanded': 'false',
              'aria-label': `Actions for the message from ${name}`,
              title: 'Actions',
              onclick: (event) => openMenu(event.currentTarget, `Message from ${name}`, messageActions(room, message)),
            },
            '⋯',
          ),
    ),
    message.reply_to ? quoteOf(room, message) : null,
    messageBody(room, message),
    message.deleted ? null : reactionBar(room, message),
  );
  // One tab stop for the whole list (menu.js): a message's own buttons join the tab
  // order only while it is the one in focus.
  quiet(element);
  return element;
}

/** A message's words: gone, under a content warning (folded away or not), or as they are. */
function messageBody(room, message) {
  if (message.deleted) return h('p', { class: 'body deleted' }, 'This message was deleted.');
  const words = message.collapsed ? null : h('p', { class: 'body' }, linkify(message.body || ''));
  return message.cw?.length ? warnedBody(room, message, words) : words;
}

/** A role badge, drawn by the page (a display name is only ever text). */
function roleBadge(role, prefix = '') {
  if (!role || role === 'member') return null;
  return h('span', { class: `role role-${role}` }, `${prefix}${role}`);
}

/** What can be done with a message, by this user, now: only what can succeed. */
function messageActions(room, message) {
  const roomView = view(room);
  const mine = message.author.username === state.me.username;
  const items = [{ label: 'Reply', run: () => startReply(room, message) }];
  if (mine) items.push({ label: 'Edit', run: () => openEdit(room, message) });
  if (!mine) items.push({ label: 'Report', run: () => openReport(room, message) });
  if (!mine) items.push({ label: 'Refer to a moderator', run: () => openRefer(room, message) });
  items.push({ label: `View ${message.author.display_name}’s profile`, run: () => openProfile(room, message.author) });
  items.push(...blockAction(message.author));
  const reacted = roomView.reacted;
  for (const emoji of state.reactions) {
    const done = reacted.has(`${message.seq} ${emoji}`);
    items.push({ label: `React ${emoji}`, glyph: emoji, checked: done, row: 'reactions', run: () => toggleReaction(room, message.seq, emoji) });
  }
  if (roomView.moderator) items.push({ label: message.cw?.length ? 'Change the content warning' : 'Add a content warning', run: () => openSetCw(room, message) });
  if (mine || roomView.moderator) items.push({ label: 'Delete', danger: true, run: () => deleteMessage(room, message) });
  items.push(...memberActions(roomView, memberOf(room, message.author)));
  return items;
}

/**
 * The card of a person, from their name anywhere: who they are (the username nobody
 * else can take, the roles the server gave them), whether they are here, and what this
 * user may do about them.
 */
function openProfile(room, user) {
  const member = memberOf(room, user);
  const roomView = view(room);
  const dialog = $('#profile-dialog');
  const act = (run) => () => {
    dialog.close();
    run();
  };
  const actions = [
    h('button', { type: 'button', class: 'small', onclick: act(() => mention(member)) }, `Mention @${member.username}`),
    ...[...blockAction(member), ...memberActions(roomView, member)].map((item) =>
      h('button', { type: 'button', class: item.danger ? 'small danger' : 'small', onclick: act(item.run) }, item.label),
    ),
  ];
  fill($('#profile-name'), member.display_name);
  const presence = roomView.members ? (member.online ? 'Here now' : 'Away') : null;
  fill(
    $('#profile-body'),
    h('p', { class: 'profile-handle' }, h('span', { class: 'handle' }, `@${member.username}`), roleBadge(member.role), member.room_role && member.room_role !== 'member' ? roleBadge(member.room_role, 'room ') : null),
    h(
      'p',
      {},
      presence ? `${presence} in #${room}.` : null,
      member.muted ? ` Muted here ${untilText(member.muted_until)}.` : null,
    ),
    h('p', { class: 'hint-text' }, 'A name can be anything; the @username is theirs alone. Roles are shown only as the server gives them.'),
    h('div', { class: 'actions', role: 'group', 'aria-label': `Actions for ${member.display_name}` }, actions),
  );
  dialog.showModal();
}

/** Puts `@username ` into the composer, where the cursor is. */
function mention(member) {
  const input = $('#message-input');
  const at = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, at);
  const spacer = before && !/\s$/.test(before) ? ' ' : '';
  input.value = `${before}${spacer}@${member.username} ${input.value.slice(at)}`;
  if (state.current) saveDraft(state.current, input.value);
  input.focus();
}

/** What the room's member list knows of `user` (role in the room, mute), or the user. */
function memberOf(room, user) {
  const known = view(room).members?.find((member) => member.username === user.username);
  return known || { ...user, room_role: 'member' };
}

/**
 * Text with its web addresses as links: only `http(s)://`, opened in a new tab without
 * telling the site where from. Everything else stays text (no previews, no images).
 */
function linkify(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/https?:\/\/[^\s<>"']+/g)) {
    // Trailing punctuation ends a sentence, not the address.
    const url = match[0].replace(/[.,;:!?)\]]+$/, '');
    parts.push(text.slice(last, match.index));
    parts.push(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer nofollow' }, url));
    last = match.index + url.length;
  }
  parts.push(text.slice(last));
  return parts;
}

/** A short quote of the message a reply answers, as far as this page holds it. */
function quoteOf(room, reply) {
  const seq = reply.reply_to;
  const roomView = view(room);
  const original = roomView.timeline.get(seq);
  if (!original) {
    // Drawn again with the quote once the original comes (say, by "load earlier").
    if (!roomView.quoting.has(seq)) roomView.quoting.set(seq, new Set());
    roomView.quoting.get(seq).add(reply.seq);
  }
  let text = 'Replying to an earlier message';
  if (original && original.deleted) text = 'Replying to a deleted message';
  else if (original && original.blocked) text = 'Replying to a message from someone you blocked';
  else if (original && original.hidden) text = 'Replying to a message you chose to hide';
  else if (original) text = `${original.author.display_name}: ${snippet(lineOf(original))}`;
  return h('blockquote', { class: 'quote', dataset: { replyTo: seq } }, text);
}

const snippet = (text, max = 120) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function startReply(room, message) {
  state.replyTo = { room, seq: message.seq };
  renderReplying();
  $('#message-input').focus();
}

/** The "Replying to …" line above the composer, for the room on screen. */
function renderReplying() {
  const line = $('#replying');
  const target = state.replyTo && state.replyTo.room === state.current ? state.replyTo : null;
  const original = target && view(target.room).timeline.get(target.seq);
  line.hidden = !original;
  if (!original) return;
  fill(
    line,
    `Replying to ${original.author?.display_name || 'a hidden message'}: ${snippet(lineOf(original))} `,
    h('button', { type: 'button', class: 'small', onclick: () => { state.replyTo = null; renderReplying(); } }, 'Cancel reply'),
  );
}

/**
 * The reactions a message has, each a toggle with its count (pressed when this page
 * reacted); none drawn for a message nobody reacted to: new ones come from its menu.
 */
function reactionBar(room, message) {
  const counts = message.reactions || {};
  const reacted = view(room).reacted;
  const buttons = state.reactions
    .filter((emoji) => counts[emoji])
    .map((emoji) =>
      h(
        'button',
        {
          type: 'button',
          class: 'reaction counted',
          'aria-pressed': String(reacted.has(`${message.seq} ${emoji}`)),
          title: `React with ${emoji}`,
          onclick: () => toggleReaction(room, message.seq, emoji),
        },
        `${emoji} ${counts[emoji]}`,
      ),
    );
  return buttons.length ? h('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' }, buttons) : null;
}

async function toggleReaction(room, seq, emoji) {
  const reacted = view(room).reacted;
  const key = `${seq} ${emoji}`;
  const add = !reacted.has(key);
  try {
    await state.connection.request(add ? 'react' : 'unreact', { room, seq, emoji });
    if (add) reacted.add(key);
    else reacted.delete(key);
    const message = view(room).timeline.get(seq);
    if (message && room === state.current) renderMessage(room, message);
  } catch (error) {
    failed(error);
  }
}

$('#load-earlier').addEventListener('click', () => loadEarlier().catch(failed));

/** Draws one page further back: what the page holds first, else a page of history. */
async function loadEarlier() {
  const room = state.current;
  const roomView = view(room);
  const list = $('#messages');
  // Messages the page holds but does not show come back first, without asking.
  const shownFrom = Number(list.firstElementChild?.dataset.seq || 0);
  const held = shownFrom ? roomView.timeline.slice(PAGE, shownFrom) : [];
  if (held.length) {
    const height = list.scrollHeight;
    // Newest first, so each one goes in before a neighbour already drawn.
    for (const message of held.reverse()) renderMessage(room, message);
    list.scrollTop += list.scrollHeight - height;
    renderRoom();
    return;
  }
  const before = roomView.timeline.lowest;
  if (!before || before <= 1) return;
  const reply = await state.connection.request('history', { room, before, limit: PAGE });
  if (room !== state.current) return;
  const height = list.scrollHeight;
  for (const message of reply.messages) addMessage(message, { live: false });
  list.scrollTop += list.scrollHeight - height;
  renderRoom();
}

/**
 * Shows one message of the open room (from a report): drawn from what the page holds,
 * or further pages back (a few at most), then scrolled to, marked and focused.
 */
async function jumpTo(room, seq) {
  if (room !== state.current) await openRoom(room);
  const roomView = view(room);
  const list = $('#messages');
  for (let page = 0; page < 10; page++) {
    const element = roomView.elements.get(seq);
    if (element && element.isConnected) {
      list.scrollTop = element.offsetTop - 8;
      for (const marked of list.querySelectorAll('.message.sought')) marked.classList.remove('sought');
      element.classList.add('sought');
      element.focus();
      return;
    }
    const shownFrom = Number(list.firstElementChild?.dataset.seq || 0);
    if (!shownFrom || shownFrom <= seq || shownFrom <= 1) break;
    await loadEarlier();
  }
  notify('That message is no longer in this room.');
}

$('#composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('#message-input');
  const body = input.value;
  if (!body.trim() || !state.current || tooLong(body)) return;
  const room = state.current;
  // The id makes a retry safe: sending the same text again after an error or a dropped
  // connection reuses it, and the server stores the message once.
  state.unsent = unsentFor(state.unsent, room, body, () => crypto.randomUUID());
  const { client_msg_id } = state.unsent;
  const reply_to = state.replyTo && state.replyTo.room === room ? state.replyTo.seq : undefined;
  const warning = composerWarning();
  try {
    const reply = await state.connection.request('send', { room, body, client_msg_id, reply_to, ...warning });
    addMessage(reply.message, { live: true });
    clearComposerWarning();
    state.unsent = null;
    if (reply_to !== undefined) state.replyTo = null;
    renderReplying();
    saveDraft(room, '');
    if (state.current === room) input.value = '';
  } catch (error) {
    if (error.code === 'offline') {
      // Kept (in this tab only) and sent when the connection is back, with the same id,
      // so it is stored once even if the first try reached the server.
      outbox.push({ room, body, client_msg_id, reply_to, ...warning });
      clearComposerWarning();
      saveOutbox();
      state.unsent = null;
      if (reply_to !== undefined) state.replyTo = null;
      renderReplying();
      saveDraft(room, '');
      if (state.current === room) input.value = '';
      renderOutbox();
    } else if (error.code === 'muted') {
      view(room).muted = { text: plainMessage(error.code, error.message) };
      renderComposerNotice();
    } else {
      failed(error);
    }
  }
});

// ---------------------------------------------------------------------------------
// Messages written while the connection was down
// ---------------------------------------------------------------------------------

const outbox = (() => {
  try {
    return JSON.parse(sessionStorage.getItem(OUTBOX_KEY)) || [];
  } catch {
    return [];
  }
})();

const saveOutbox = () =>
  outbox.length ? sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox)) : sessionStorage.removeItem(OUTBOX_KEY);

let flushing = false;

/** Sends what waits, in order, once connected; stops at the first that cannot go yet. */
async function flushOutbox() {
  if (flushing) return;
  flushing = true;
  try {
    while (outbox.length) {
      const { room, body, client_msg_id, reply_to, cw, cw_note } = outbox[0];
      try {
        const reply = await state.connection.request('send', { room, body, client_msg_id, reply_to, cw, cw_note });
        addMessage(reply.message, { live: true });
      } catch (error) {
        if (error.code === 'offline') return;
        // Refused (muted, left the room...): the words go back to that room's composer.
        saveDraft(room, [draftOf(room), body].filter(Boolean).join('\n'));
        if (room === state.current) $('#message-input').value = draftOf(room);
        notify(`Not sent to #${room}: ${plainMessage(error.code, error.message)} Your words are back in its composer.`);
      }
      outbox.shift();
      saveOutbox();
      renderOutbox();
    }
  } finally {
    flushing = false;
  }
}

/** The open room's waiting messages, above the composer. */
function renderOutbox() {
  const list = $('#outbox');
  const waiting = outbox.filter((entry) => entry.room === state.current);
  list.hidden = waiting.length === 0;
  fill(
    list,
    waiting.map((entry) =>
      h(
        'li',
        {},
        h('span', {}, `Waiting for the connection: ${snippet(entry.body, 80)}`),
        h(
          'button',
          {
            type: 'button',
            class: 'small',
            onclick: () => {
              const at = outbox.indexOf(entry);
              if (at < 0) return;
              outbox.splice(at, 1);
              saveOutbox();
              const input = $('#message-input');
              input.value = [input.value, entry.body].filter(Boolean).join('\n');
              saveDraft(entry.room, input.value);
              renderOutbox();
            },
          },
          'Back to the composer',
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------
// Notifications of mentions (opt-in, this tab only)
// ---------------------------------------------------------------------------------

$('#notify-mentions').checked = sessionStorage.getItem(NOTIFY_KEY) === 'on' && window.Notification?.permission === 'granted';
$('#notify-mentions').addEventListener('change', async (event) => {
  if (!event.target.checked) {
    sessionStorage.removeItem(NOTIFY_KEY);
    return;
  }
  const permission = window.Notification ? await Notification.requestPermission() : 'denied';
  if (permission !== 'granted') {
    event.target.checked = false;
    notify('This browser is not allowing notifications from this page; you can allow them in its site settings.');
    return;
  }
  sessionStorage.setItem(NOTIFY_KEY, 'on');
});

/** Someone named her while she is elsewhere: a notice naming only the room. */
function notifyMention(room) {
  if (sessionStorage.getItem(NOTIFY_KEY) !== 'on' || document.visibilityState !== 'hidden') return;
  if (window.Notification?.permission !== 'granted') return;
  const notice = new Notification('Alongside', { body: `You were mentioned in #${room}.`, tag: `mention-${room}` });
  notice.onclick = () => {
    window.focus();
    if (state.joined.has(room)) openRoom(room);
  };
}

/** Unsent words per room, kept in session storage (gone with the tab or a quick exit). */
function drafts() {
  try {
    return JSON.parse(sessionStorage.getItem(DRAFTS_KEY)) || {};
  } catch {
    return {};
  }
}

const draftOf = (room) => drafts()[room] || '';

function saveDraft(room, text) {
  const all = drafts();
  if (text) all[room] = text;
  else delete all[room];
  sessionStorage.setItem(DRAFTS_KEY, JSON.stringify(all));
}

$('#message-input').addEventListener('input', (event) => {
  if (state.current) saveDraft(state.current, event.target.value);
  tooLong(event.target.value);
});

/** Says so (and keeps every character) when a message is over the limit. */
function tooLong(body) {
  const length = [...body].length;
  const over = length > MAX_BODY_CHARS;
  const notice = $('#too-long');
  notice.hidden = !over;
  if (over) {
    fill(notice, `This message is ${length.toLocaleString()} characters; the limit is ${MAX_BODY_CHARS.toLocaleString()}. Nothing was cut: shorten it, or split it in two, to send.`);
  }
  return over;
}

let lastTyping = 0;
$('#message-input').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('#composer').requestSubmit();
    return;
  }
  // Only keys that change the text say "typing" (not Tab, arrows or shortcuts).
  const writes = (event.key.length === 1 || event.key === 'Backspace' || event.key === 'Delete') && !event.ctrlKey && !event.metaKey;
  if (writes && state.current && Date.now() - lastTyping > 3000) {
    lastTyping = Date.now();
    state.connection.request('typing', { room: state.current }).catch(() => {});
  }
});

async function deleteMessage(room, message) {
  const mine = message.author?.username === state.me.username;
  const sure = await confirmAction({
    title: 'Delete this message?',
    text: mine
      ? 'It goes for everyone in the room, and cannot be brought back.'
      : `${message.author?.display_name || 'Its author'}’s message goes for everyone in the room, and the deletion is kept in the moderation log.`,
    confirm: 'Delete message',
  });
  if (!sure) return;
  try {
    await state.connection.request('delete_message', { room, seq: message.seq });
  } catch (error) {
    failed(error);
  }
}

function openEdit(room, message) {
  const dialog = $('#edit-dialog');
  $('#edit-body').value = message.body;
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    try {
      const reply = await state.connection.request('edit', { room, seq: message.seq, body: $('#edit-body').value });
      addMessage(reply.message, { live: false });
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

function openRefer(room, message) {
  const dialog = $('#refer-dialog');
  $('#refer-note').value = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    try {
      const note = $('#refer-note').value.trim();
      await state.connection.request('refer', { room, seq: message.seq, ...(note ? { note } : {}) });
      notify('Thank you for looking out for them. The moderators have been told.');
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

function openReport(room, message) {
  const dialog = $('#report-dialog');
  $('#report-reason').value = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    try {
      await state.connection.request('report', { room, seq: message.seq, reason: $('#report-reason').value });
      notify('Thank you. The moderators have your report.');
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

$('#leave-room').addEventListener('click', async () => {
  const room = state.current;
  try {
    await state.connection.request('leave', { room });
    leftRoom(room);
  } catch (error) {
    failed(error);
  }
});

function leftRoom(room) {
  state.joined.delete(room);
  state.views.delete(room);
  if (state.current === room) {
    state.current = null;
    sessionStorage.removeItem(ROOM_KEY);
    $('#room-content').hidden = true;
    $('#no-room').hidden = false;
  }
  refreshRooms();
}

// ---------------------------------------------------------------------------------
// Room and account forms
// ---------------------------------------------------------------------------------

fill($('#summit-zone'), `Times are in your time zone, ${timeZone()}.`);

$('#room-kind').addEventListener('change', (event) => {
  $('#summit-fields').hidden = event.target.value !== 'summit';
});

$('#create-room-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const fields = { name: form.name.value, topic: form.topic.value || undefined, kind: form.kind.value };
  if (form.private.checked) fields.visibility = 'private';
  if (form.since_join.checked) fields.history_visibility = 'since_join';
  if (fields.kind === 'summit') {
    if (form.starts_at.value) fields.starts_at = new Date(form.starts_at.value).toISOString();
    if (form.ends_at.value) fields.ends_at = new Date(form.ends_at.value).toISOString();
    if (form.capacity.value) fields.capacity = Number(form.capacity.value);
  }
  try {
    const reply = await state.connection.request('create_room', fields);
    form.reset();
    $('#summit-fields').hidden = true;
    $('#create-room').open = false;
    state.rooms.set(reply.room.name, reply.room);
    await openRoom(reply.room.name);
  } catch (error) {
    failed(error);
  }
});

// ---------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------

function onEvent(event) {
  const me = state.me && state.me.username;
  switch (event.type) {
    case 'message': {
      const hole = view(event.room).timeline.gapBefore(event.message.seq);
      const fresh = addMessage(event.message, { live: true });
      // A hole before this message (it should not happen) is filled from history.
      if (hole) catchUp(event.room).catch(() => {});
      if (fresh && event.room === state.current && event.message.author?.username !== me) {
        announceMessage(event.message);
      }
      if (fresh && event.room === state.current) {
        markRead();
      } else if (fresh && event.message.author?.username !== me && state.rooms.has(event.room)) {
        const room = state.rooms.get(event.room);
        room.unread = (room.unread || 0) + 1;
        renderRoomList();
      }
      break;
    }
    case 'mention':
      notifyMention(event.room);
      if (event.room !== state.current && state.rooms.has(event.room)) {
        const room = state.rooms.get(event.room);
        room.mentions_unread = (room.mentions_unread || 0) + 1;
        renderRoomList();
        announce(`You were mentioned in #${event.room}.`);
      }
      break;
    case 'read': {
      // Read on another device: nothing is new here up to that seq.
      const room = state.rooms.get(event.room);
      if (room && event.seq >= (state.views.get(event.room)?.timeline.highest || 0)) {
        Object.assign(room, { unread: 0, mentions_unread: 0 });
        renderRoomList();
      }
      break;
    }
    case 'message_deleted': {
      const message = state.views.get(event.room)?.timeline.get(event.seq);
      if (message) addMessage({ ...message, deleted: true, body: undefined }, { live: false });
      break;
    }
    case 'reactions': {
      const message = state.views.get(event.room)?.timeline.get(event.seq);
      if (message && !message.deleted) {
        // Counts change in place: the timeline keeps the message object it holds.
        message.reactions = event.reactions;
        if (event.room === state.current) renderMessage(event.room, message);
        else view(event.room).elements.delete(event.seq);
      }
      break;
    }
    case 'message_updated':
      addMessage(event.message, { live: false });
      break;
    case 'member_joined':
      if (event.user.username === state.me?.username && !state.joined.has(event.room)) {
        // Let in by a moderator (an approved request or an invitation).
        state.joined.add(event.room);
        notify(`You are now a member of #${event.room}.`);
        refreshRooms();
      }
      view(event.room).online.set(event.user.username, event.user);
      updateOnline(event.room);
      memberChanged(event.room, event.user.username, { ...event.user, online: true });
      break;
    case 'member_left':
      view(event.room).online.delete(event.user.username);
      updateOnline(event.room);
      memberChanged(event.room, event.user.username, event.reason === 'disconnected' ? { online: false } : null);
      break;
    case 'typing':
      showTyping(event.room, event.user);
      break;
    case 'room_created':
      // A new room shows in the list at once (joining it stays a choice).
      if (!state.rooms.has(event.room.name)) {
        state.rooms.set(event.room.name, event.room);
        // Its creator is its first member, on every device.
        if (event.room.owner === state.me?.username) state.joined.add(event.room.name);
        renderRoomList();
      }
      break;
    case 'room_updated':
      state.rooms.set(event.room.name, event.room);
      // renderRoom draws the member list too: the host badge follows duty.
      if (event.room.name === state.current) renderRoom();
      renderRoomList();
      break;
    case 'muted':
      if (event.user.username === me) {
        view(event.room).muted = { until: event.until, reason: event.reason };
        notify(`You have been muted in #${event.room} ${untilText(event.until)}.${event.reason ? ` Reason: ${event.reason}` : ''}`);
      }
      if (event.room === state.current) renderRoom();
      memberChanged(event.room, event.user.username, { muted: true, muted_until: event.until });
      if (event.room === state.current) refreshSanctions();
      break;
    case 'unmuted':
      if (event.user.username === me) {
        view(event.room).muted = null;
        notify(`You can post in #${event.room} again.`);
      }
      if (event.room === state.current) renderRoom();
      memberChanged(event.room, event.user.username, { muted: false, muted_until: undefined });
      if (event.room === state.current) refreshSanctions();
      break;
    case 'kicked':
      notify(`You were removed from #${event.room} by ${event.by}.${event.reason ? ` Reason: ${event.reason}` : ''} You can join again.`);
      leftRoom(event.room);
      break;
    case 'banned':
      if (event.room) {
        notify(`You were banned from #${event.room} ${untilText(event.until)}.${event.reason ? ` Reason: ${event.reason}` : ''}`);
        leftRoom(event.room);
      } else {
        // A server ban: say why and until when, rather than "the connection dropped".
        endSession(`You have been banned from this network ${untilText(event.until)}.${event.reason ? ` Reason: ${event.reason}` : ''}`);
      }
      break;
    case 'report':
      reportArrived(event.report);
      break;
    case 'appeal':
      appealArrived(event.appeal);
      break;
    case 'join_request':
      joinRequested(event.room, event.user);
      break;
    case 'join_refused':
      joinRefused(event.room);
      break;
    case 'appeal_resolved':
      appealResolved(event.appeal);
      break;
    case 'care_resources':
      // Only ever one's own message: support, privately.
      openSupport({ resources: event.resources, afterMessage: true });
      break;
    case 'care_alert':
      careAlertArrived(event.alert);
      break;
    case 'question':
      questionArrived(event);
      break;
    case 'question_votes':
      votesArrived(event);
      break;
    case 'warned':
      notify(`A moderator (${event.by}) has a word for you in #${event.room}: ${event.reason}`);
      break;
    case 'user_updated':
      state.me = event.user;
      onRoleChanged();
      break;
    default:
      break;
  }
}

async function onRoleChanged() {
  try {
    showAccountTools((await me(state.token)).may_create);
  } catch (error) {
    failed(error);
  }
  notify(`Your role is now ${state.me.role}.`);
  if (state.current) openRoom(state.current);
}

function updateOnline(room) {
  const known = state.rooms.get(room);
  if (known) known.members_online = view(room).online.size;
  if (room === state.current) renderMembers();
  renderRoomList();
}

function showTyping(room, user) {
  const roomView = view(room);
  clearTimeout(roomView.typing.get(user.username));
  roomView.typing.set(
    user.username,
    setTimeout(() => {
      roomView.typing.delete(user.username);
      renderTyping();
    }, 4000),
  );
  renderTyping();
  function renderTyping() {
    if (state.current !== room) return;
    const names = [...roomView.typing.keys()].map((name) => (roomView.online.get(name) || { display_name: name }).display_name);
    fill($('#typing'), names.length ? `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…` : '');
  }
}

// ---------------------------------------------------------------------------------

if (state.token) start(state.token);
else showAuth();
