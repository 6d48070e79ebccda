// What reaches the reader: content warnings (the composer's picker, messages the server
// sent collapsed or hidden by the reader's own choice with a way to show them, the
// reader's choices, a moderator's "set a warning") and blocking (someone's messages
// become a quiet stub, their typing stops). The server shapes every message before it
// leaves; this page never has the words of a message it shows collapsed, hidden or
// blocked until the reader asks for them (`reveal`, `unblock`).

import { $, fill, h } from './dom.js';
import { failed, notify } from './ui.js';

/** The tags, in the server's order, with the words the page uses for them. */
export const CW_LABELS = {
  self_harm: 'Self-harm',
  suicide: 'Suicide',
  eating: 'Eating and food',
  substances: 'Alcohol and drugs',
  abuse: 'Abuse',
  violence: 'Violence',
  grief: 'Grief and loss',
  other: 'Something else',
};

const SHAPES = [
  ['show', 'Show'],
  ['collapse', 'Fold away'],
  ['hide', 'Hide'],
];

/** The client's state and page hooks, set by `installWarnings`. */
let state;
let page;

/**
 * Wires the picker, the preferences panel and the moderators' dialog; `hooks` are the
 * page's `addMessage(message)` and `refreshRoom(room)` (reads its latest messages again).
 */
export function installWarnings(appState, hooks) {
  state = appState;
  page = hooks;
  fill($('#cw-tags'), tagChoices('cw-tag'));
  $('#cw-tags').addEventListener('change', renderPickerSummary);
  fill($('#set-cw-tags'), tagChoices('set-cw-tag'));
  fill(
    $('#preferences-list'),
    Object.entries(CW_LABELS).map(([tag, label]) =>
      h(
        'li',
        {},
        h('label', { for: `pref-${tag}` }, label),
        h('select', { id: `pref-${tag}`, name: tag }, SHAPES.map(([value, text]) => h('option', { value }, text))),
      ),
    ),
  );
  $('#cw-preferences').addEventListener('toggle', () => $('#cw-preferences').open && loadPreferences());
  $('#preferences-form').addEventListener('submit', savePreferences);
}

/** One checkbox per tag, named `name`. */
function tagChoices(name) {
  return Object.entries(CW_LABELS).map(([tag, label]) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name, value: tag }), ` ${label}`),
  );
}

/** The tags checked among `container`'s boxes. */
function checkedTags(container) {
  return [...container.querySelectorAll('input[type=checkbox]:checked')].map((box) => box.value);
}

/** "Self-harm, Grief and loss". */
export function tagWords(tags) {
  return (tags || []).map((tag) => CW_LABELS[tag] || tag).join(', ');
}

// ---------------------------------------------------------------------------------
// The composer
// ---------------------------------------------------------------------------------

/** The warning chosen for the message being written: `{cw, cw_note}`, or nothing. */
export function composerWarning() {
  const cw = checkedTags($('#cw-tags'));
  if (!cw.length) return {};
  const note = $('#cw-note').value.trim();
  return note ? { cw, cw_note: note } : { cw };
}

/** After a send: the next message starts without a warning. */
export function clearComposerWarning() {
  for (const box of $('#cw-tags').querySelectorAll('input')) box.checked = false;
  $('#cw-note').value = '';
  $('#cw-picker').open = false;
  renderPickerSummary();
}

function renderPickerSummary() {
  const tags = checkedTags($('#cw-tags'));
  $('#cw-picker-summary').textContent = tags.length ? `Content warning: ${tagWords(tags)}` : 'Add a content warning';
  $('#cw-picker').classList.toggle('chosen', tags.length > 0);
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

/** What a message says, in a line (announcements, quotes), without words held back. */
export function lineOf(message) {
  if (message.deleted) return 'deleted message';
  if (message.blocked) return 'a message from someone you blocked';
  if (message.hidden || message.collapsed) return `a message with a content warning (${tagWords(message.cw)})`;
  return message.body || '';
}

/** The element of a message the reader chose to hide: where it was, and a way to see it. */
export function hiddenElement(room, message) {
  if (message.blocked) {
    return h(
      'li',
      { class: 'message hidden-message', dataset: { seq: message.seq } },
      h('p', { class: 'cw-stub' }, 'A message from someone you blocked.'),
    );
  }
  return h(
    'li',
    { class: 'message hidden-message', dataset: { seq: message.seq } },
    h(
      'p',
      { class: 'cw-stub' },
      `A message about ${tagWords(message.cw).toLowerCase()} is hidden, as you chose. `,
      h('button', { type: 'button', class: 'small quiet', onclick: () => reveal(room, message.seq) }, 'Show it anyway'),
    ),
  );
}

/**
 * The body of a message with warnings: folded away (no words, a button) when the
 * server sent it collapsed; the words under a label when whole. `body` is the page's
 * element for the words.
 */
export function warnedBody(room, message, body) {
  const label = h(
    'p',
    { class: 'cw-label' },
    h('strong', {}, 'Content warning: '),
    tagWords(message.cw),
    message.cw_note ? ` — ${message.cw_note}` : null,
  );
  if (!message.collapsed) return h('div', { class: 'cw-whole' }, label, body);
  return h(
    'div',
    { class: 'cw-folded' },
    label,
    h('button', { type: 'button', class: 'small', onclick: () => reveal(room, message.seq) }, 'Show message'),
  );
}

/** Asks for one message whole and puts it in place. */
async function reveal(room, seq) {
  try {
    const reply = await state.connection.request('reveal', { room, seq });
    page.addMessage(reply.message);
  } catch (error) {
    failed(error);
  }
}

// ---------------------------------------------------------------------------------
// What reaches me
// ---------------------------------------------------------------------------------

async function loadPreferences() {
  try {
    const reply = await state.connection.request('preferences');
    for (const [tag, shape] of Object.entries(reply.preferences.cw)) {
      const select = $(`#pref-${tag}`);
      if (select) select.value = shape;
    }
  } catch (error) {
    failed(error);
  }
}

async function savePreferences(event) {
  event.preventDefault();
  const cw = {};
  for (const select of $('#preferences-list').querySelectorAll('select')) cw[select.name] = select.value;
  try {
    await state.connection.request('set_preferences', { cw });
    notify('Saved. New messages follow your choices; reopen a room to apply them to earlier ones.');
  } catch (error) {
    failed(error);
  }
}

// ---------------------------------------------------------------------------------
// Moderators
// ---------------------------------------------------------------------------------

/** A room moderator sets, changes or takes off the warning of a message. */
export function openSetCw(room, message) {
  const dialog = $('#set-cw-dialog');
  for (const box of $('#set-cw-tags').querySelectorAll('input')) box.checked = (message.cw || []).includes(box.value);
  $('#set-cw-note').value = message.cw_note || '';
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    const cw = checkedTags($('#set-cw-tags'));
    const note = $('#set-cw-note').value.trim();
    try {
      await state.connection.request('set_cw', { room, seq: message.seq, cw, ...(note && cw.length ? { cw_note: note } : {}) });
      notify(cw.length ? `The message now carries a warning: ${tagWords(cw)}.` : 'The warning is off the message.');
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

// ---------------------------------------------------------------------------------
// Blocking
// ---------------------------------------------------------------------------------

/** Usernames this member blocks, as the server last said. */
const blocked = new Set();

/** Reads the member's blocks (after each authentication). */
export async function loadBlocks() {
  try {
    const reply = await state.connection.request('blocks');
    blocked.clear();
    for (const user of reply.users) blocked.add(user.username);
    renderBlocks(reply.users);
  } catch (error) {
    failed(error);
  }
}

/** The menu item to block or unblock `user` (none for oneself). */
export function blockAction(user) {
  if (!state.me || user.username === state.me.username) return [];
  const name = user.display_name || user.username;
  return blocked.has(user.username)
    ? [{ label: `Unblock ${name}`, run: () => setBlock(user, false) }]
    : [{ label: `Block ${name}`, run: () => setBlock(user, true) }];
}

async function setBlock(user, on) {
  try {
    await state.connection.request(on ? 'block' : 'unblock', { user: user.username });
  } catch (error) {
    failed(error);
    return;
  }
  if (on) {
    blocked.add(user.username);
    // What the page holds of theirs goes at once; the server sends only stubs from now on.
    for (const roomView of state.views.values()) {
      for (const message of [...roomView.timeline.inOrder()]) {
        if (message.author?.username === user.username) {
          page.addMessage({ seq: message.seq, room: message.room, hidden: true, blocked: true });
        }
      }
    }
    notify(`You blocked @${user.username}. Their messages show as a short note, and they are not told.`);
  } else {
    blocked.delete(user.username);
    if (state.current) await page.refreshRoom(state.current);
    notify(`You unblocked @${user.username}.`);
  }
  await loadBlocks();
}

/** The list of people blocked, each with "Unblock", in the "what reaches me" panel. */
function renderBlocks(users) {
  const list = $('#blocks-list');
  $('#blocks-none').hidden = users.length > 0;
  fill(
    list,
    users.map((user) =>
      h(
        'li',
        {},
        h('span', {}, `${user.display_name} `, h('span', { class: 'handle' }, `@${user.username}`)),
        h('button', { type: 'button', class: 'small', onclick: () => setBlock(user, false) }, 'Unblock'),
      ),
    ),
  );
}
