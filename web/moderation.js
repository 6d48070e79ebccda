// The moderator tools: actions on members, room settings, reports, the moderation
// log and global roles. The page shows them where the server says the user moderates
// (`my_role` in the join reply); the server checks every request again.

import { $, fill, h } from './dom.js';
import { failed, formatTime, notify } from './ui.js';

/** The client's state, set by `installModeration`. */
let state;

/** Wires the tools to the page over the client's `appState`. */
export function installModeration(appState) {
  state = appState;
  $('#apply-slow-mode').addEventListener('click', applySlowMode);
  $('#toggle-lock').addEventListener('click', toggleLock);
  $('#unban-form').addEventListener('submit', unban);
  $('#show-reports').addEventListener('click', showReports);
  $('#show-log').addEventListener('click', showLog);
  $('#role-form').addEventListener('submit', setRole);
}

/** The buttons beside a member in the member list. */
export function moderatorActions(user) {
  const act = (action, label) =>
    h('button', { type: 'button', class: 'small', onclick: () => openModeration(action, user) }, label);
  return h(
    'span',
    { class: 'member-actions', role: 'group', 'aria-label': `Moderate ${user.display_name}` },
    user.muted
      ? h('button', { type: 'button', class: 'small', onclick: () => simpleAction('unmute', user) }, 'Unmute')
      : act('mute', 'Mute'),
    act('kick', 'Remove'),
    act('ban', 'Ban'),
  );
}

const MOD_TITLES = { mute: 'Mute', kick: 'Remove from the room', ban: 'Ban from the room' };

export function openModeration(action, user) {
  const room = state.current;
  const dialog = $('#mod-dialog');
  fill($('#mod-dialog-title'), `${MOD_TITLES[action]}: ${user.display_name}`);
  fill($('#mod-dialog-target'), action === 'kick' ? 'They can come back by joining again.' : '');
  $('#mod-duration-row').hidden = action === 'kick';
  $('#mod-reason').value = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    const fields = { room, user: user.username, reason: $('#mod-reason').value || undefined };
    const duration = $('#mod-duration').value;
    if (action !== 'kick' && duration) fields.duration_s = Number(duration);
    try {
      await state.connection.request(action, fields);
      notify(`Done: ${MOD_TITLES[action].toLowerCase()} for ${user.display_name}.`);
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

async function simpleAction(action, user) {
  try {
    await state.connection.request(action, { room: state.current, user: user.username });
    notify(`Done: ${action} ${user.display_name}.`);
  } catch (error) {
    failed(error);
  }
}

async function applySlowMode() {
  try {
    await state.connection.request('slow_mode', { room: state.current, seconds: Number($('#slow-mode').value) });
  } catch (error) {
    failed(error);
  }
}

async function toggleLock() {
  const room = state.rooms.get(state.current);
  try {
    await state.connection.request('lock', { room: room.name, locked: !room.locked });
  } catch (error) {
    failed(error);
  }
}

async function unban(event) {
  event.preventDefault();
  const user = event.target.user.value;
  try {
    await state.connection.request('unban', { room: state.current, user });
    event.target.reset();
    notify(`${user} can join this room again.`);
  } catch (error) {
    failed(error);
  }
}

async function showReports() {
  const room = state.current;
  const panel = $('#reports-panel');
  try {
    const reply = await state.connection.request('reports', { room, limit: 200 });
    const items = reply.reports.map((report) => {
      // The server keeps the message as it was reported, even if it was deleted since.
      const held = state.views.get(room)?.timeline.get(report.seq);
      const message = report.message || held;
      const deletedSince = held?.deleted;
      return h(
        'li',
        {},
        h('p', {}, h('strong', {}, report.reporter), ` reported message ${report.seq} at ${formatTime(report.ts)}: `, report.reason),
        message && message.body ? h('blockquote', {}, `${message.author.display_name}: ${message.body}`) : null,
        deletedSince ? h('p', { class: 'since' }, 'The message has been deleted since; this is how it read when reported.') : null,
        h('button', { type: 'button', class: 'small', onclick: () => resolveReport(report) }, 'Mark resolved'),
      );
    });
    fill(
      panel,
      h('h3', {}, 'Open reports'),
      items.length ? h('ul', { class: 'report-list' }, items) : h('p', {}, 'No open reports.'),
      reply.more ? h('p', { class: 'since' }, 'More reports wait: resolve these to see the next ones.') : null,
    );
    panel.hidden = false;
  } catch (error) {
    failed(error);
  }
}

async function resolveReport(report) {
  const note = prompt('What was done? (optional, goes into the moderation log)') || undefined;
  try {
    await state.connection.request('resolve_report', { room: report.room, report_id: report.id, note });
    await showReports();
  } catch (error) {
    failed(error);
  }
}

async function showLog() {
  const panel = $('#log-panel');
  try {
    const reply = await state.connection.request('mod_log', { room: state.current });
    const items = reply.entries.map((entry) =>
      h(
        'li',
        {},
        h('time', { datetime: entry.ts }, formatTime(entry.ts)),
        ` ${entry.actor}: ${entry.action}`,
        entry.target ? ` ${entry.target}` : '',
        entry.seq ? ` (message ${entry.seq})` : '',
        entry.until ? ` until ${formatTime(entry.until)}` : '',
        entry.reason ? ` — ${entry.reason}` : '',
      ),
    );
    fill(panel, h('h3', {}, 'Moderation log'), items.length ? h('ul', { class: 'log-list' }, items) : h('p', {}, 'Nothing yet.'));
    panel.hidden = false;
  } catch (error) {
    failed(error);
  }
}

async function setRole(event) {
  event.preventDefault();
  const form = event.target;
  try {
    await state.connection.request('set_role', { user: form.user.value, role: form.role.value });
    notify(`${form.user.value} is now ${form.role.value === 'admin' ? 'an' : 'a'} ${form.role.value}.`);
    form.reset();
  } catch (error) {
    failed(error);
  }
}
