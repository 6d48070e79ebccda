// The moderator tools: actions on members, room settings, reports, the moderation
// log and global roles. The page shows them where the server says the user moderates
// (`my_role` in the join reply); the server checks every request again.

import { $, fill, h } from './dom.js';
import { confirmAction, failed, formatTime, notify, showQueue, untilText } from './ui.js';

/** The client's state and page hooks, set by `installModeration`. */
let state;
let page;

/**
 * Wires the tools to the page over the client's `appState`; `hooks` are the page's
 * `canModerate(roomView, member)`, `memberOf(room, user)`, `deleteMessage(room, message)`
 * and `jumpTo(room, seq)`.
 */
export function installModeration(appState, hooks) {
  state = appState;
  page = hooks;
  $('#apply-slow-mode').addEventListener('click', applySlowMode);
  $('#toggle-lock').addEventListener('click', toggleLock);
  $('#toggle-host-rule').addEventListener('click', toggleHostRule);
  $('#toggle-duty').addEventListener('click', toggleDuty);
  $('#mod-tools').addEventListener('toggle', () => $('#mod-tools').open && refreshSanctions());
  $('#show-reports').addEventListener('click', showReports);
  $('#show-log').addEventListener('click', showLog);
  $('#role-form').addEventListener('submit', setRole);
}

/**
 * What this page's user can do to `member` in the open room ({label, short, run,
 * danger}): nothing unless the server would allow it (the page's `canModerate`).
 */
export function memberActions(roomView, member) {
  if (!page.canModerate(roomView, member)) return [];
  const name = member.display_name;
  return [
    member.muted
      ? { label: `Unmute ${name}`, short: 'Unmute', run: () => simpleAction('unmute', member) }
      : { label: `Mute ${name}`, short: 'Mute', run: () => openModeration('mute', member) },
    { label: `Remove ${name} from the room`, short: 'Remove', danger: true, run: () => openModeration('kick', member) },
    { label: `Ban ${name} from the room`, short: 'Ban', danger: true, run: () => openModeration('ban', member) },
  ];
}

/** The buttons beside a member in the member list. */
export function moderatorActions(roomView, member) {
  const items = memberActions(roomView, member);
  if (!items.length) return null;
  return h(
    'span',
    { class: 'member-actions', role: 'group', 'aria-label': `Moderate ${member.display_name}` },
    items.map((item) => h('button', { type: 'button', class: 'small', onclick: item.run }, item.short)),
  );
}

const MOD_TITLES = { mute: 'Mute', kick: 'Remove from the room', ban: 'Ban from the room' };
const MOD_DONE = { mute: 'muted', kick: 'removed from the room', ban: 'banned from the room' };

export function openModeration(action, user) {
  const room = state.current;
  const dialog = $('#mod-dialog');
  fill($('#mod-dialog-title'), `${MOD_TITLES[action]}: ${user.display_name}`);
  fill($('#mod-dialog-target'), action === 'kick' ? 'They can come back by joining again.' : '');
  $('#mod-duration-row').hidden = action === 'kick';
  // Every dialog starts from the same safe choice: nothing carries over from the last.
  $('#mod-duration').value = '3600';
  $('#mod-reason').value = '';
  fill($('#mod-confirm'), MOD_TITLES[action]);
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    const fields = { room, user: user.username, reason: $('#mod-reason').value || undefined };
    const duration = $('#mod-duration').value;
    if (action !== 'kick' && duration) fields.duration_s = Number(duration);
    try {
      await state.connection.request(action, fields);
      notify(`${user.display_name} is ${MOD_DONE[action]}.`);
      refreshSanctions();
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

async function simpleAction(action, user) {
  try {
    await state.connection.request(action, { room: state.current, user: user.username });
    notify(`${user.display_name} ${action === 'unmute' ? 'can post again' : 'can join again'}.`);
    refreshSanctions();
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

async function toggleHostRule() {
  const room = state.rooms.get(state.current);
  try {
    await state.connection.request('host_rule', { room: room.name, required: !room.requires_host });
  } catch (error) {
    failed(error);
  }
}

async function toggleDuty() {
  const room = state.rooms.get(state.current);
  const onDuty = (room.hosts_on_duty || []).includes(state.me.username);
  try {
    await state.connection.request('duty', { room: room.name, on: !onDuty });
    notify(onDuty ? 'You are off duty. Thank you for hosting.' : 'You are on duty: the room can see you are hosting.');
  } catch (error) {
    failed(error);
  }
}

/** The room's bans and mutes in force, each with its end and a way to lift it. */
export async function refreshSanctions() {
  const room = state.current;
  if (!room || !$('#mod-tools').open) return;
  try {
    const reply = await state.connection.request('sanctions', { room });
    if (room !== state.current) return;
    const items = reply.sanctions.map((sanction) => {
      const lift = sanction.kind === 'ban' ? 'unban' : 'unmute';
      const what = sanction.kind === 'ban' ? 'banned' : 'muted';
      return h(
        'li',
        {},
        h('span', { class: 'member-name' }, sanction.user.display_name),
        h('span', { class: 'handle' }, `@${sanction.user.username}`),
        ` ${what} ${untilText(sanction.until)}`,
        ` (by ${sanction.by})`,
        sanction.reason ? `: ${sanction.reason}` : '',
        ' ',
        h(
          'button',
          { type: 'button', class: 'small', onclick: () => simpleAction(lift, sanction.user) },
          sanction.kind === 'ban' ? `Unban ${sanction.user.display_name}` : `Unmute ${sanction.user.display_name}`,
        ),
      );
    });
    fill($('#sanctions-list'), items.length ? items : h('li', { class: 'empty' }, 'Nobody is banned or muted here.'));
  } catch (error) {
    failed(error);
  }
}

/** New reports since the list was last opened, counted on its button. */
let unseenReports = 0;

/** A report arrived (the `report` event): counted on the button, refreshed if shown. */
export function reportArrived(report) {
  if (report.room !== state.current) {
    notify(`New report in #${report.room}.`);
    return;
  }
  if (!$('#reports-panel').hidden) {
    showReports();
    return;
  }
  unseenReports += 1;
  showUnseen();
}

/** The count of new reports, on the button and on the closed tools' summary. */
function showUnseen() {
  fill($('#show-reports'), unseenReports ? `Open reports (${unseenReports} new)` : 'Open reports');
  const news = $('#mod-tools-news');
  news.hidden = unseenReports === 0;
  fill(news, `${unseenReports} new report${unseenReports === 1 ? '' : 's'}`);
}

async function showReports() {
  const room = state.current;
  const panel = $('#reports-panel');
  unseenReports = 0;
  showUnseen();
  try {
    const reply = await state.connection.request('reports', { room, limit: 200 });
    const items = reply.reports.map((report) => reportItem(room, report));
    const more = reply.more && 'More reports wait: resolve these to see the next ones.';
    showQueue(panel, { title: 'Open reports', items, empty: 'No open reports.', more });
  } catch (error) {
    failed(error);
  }
}

/** One report: who and why, the message as reported, and what can be done from here. */
function reportItem(room, report) {
  // The server keeps the message as it was reported, even if it was deleted since.
  const held = state.views.get(room)?.timeline.get(report.seq);
  const message = report.message || held;
  const deletedSince = held?.deleted;
  const author = message?.author;
  const roomView = state.views.get(room);
  const actions = [
    h('button', { type: 'button', class: 'small', onclick: () => page.jumpTo(room, report.seq) }, 'Go to the message'),
  ];
  if (!deletedSince && !message?.deleted) {
    actions.push(h('button', { type: 'button', class: 'small', onclick: () => page.deleteMessage(room, { ...message, seq: report.seq }) }, 'Delete the message'));
  }
  if (author) {
    for (const item of memberActions(roomView, page.memberOf(room, author))) {
      actions.push(h('button', { type: 'button', class: 'small', onclick: item.run }, item.label));
    }
  }
  actions.push(h('button', { type: 'button', class: 'small', onclick: () => resolveReport(report) }, 'Resolve…'));
  return h(
    'li',
    {},
    h('p', {}, h('strong', {}, report.reporter), ` reported this at ${formatTime(report.ts)}: `, report.reason),
    message && message.body
      ? h(
          'blockquote',
          {},
          h('span', { class: 'author' }, author.display_name),
          h('span', { class: 'handle' }, `@${author.username}`),
          h('time', { datetime: message.ts }, formatTime(message.ts)),
          h('span', { class: 'quoted' }, message.body),
        )
      : h('p', { class: 'since' }, 'The words of this message were not kept.'),
    deletedSince ? h('p', { class: 'since' }, 'The message has been deleted since; this is how it read when reported.') : null,
    h('div', { class: 'actions', role: 'group', 'aria-label': `What to do about ${report.reporter}’s report` }, actions),
  );
}

function resolveReport(report) {
  const dialog = $('#resolve-dialog');
  fill($('#resolve-summary'), `${report.reporter} said: ${report.reason}`);
  $('#resolve-note').value = '';
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    try {
      const note = $('#resolve-note').value.trim() || undefined;
      await state.connection.request('resolve_report', { room: report.room, report_id: report.id, note });
      notify('Report resolved.');
      await showReports();
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

/** The log's actions in words ("olivia muted bea until ..."). */
const LOG_WORDS = {
  mute: 'muted',
  unmute: 'unmuted',
  kick: 'removed',
  ban: 'banned',
  unban: 'lifted the ban on',
  delete: 'deleted a message by',
  slow_mode: 'set slow mode (seconds)',
  lock: 'locked the room',
  unlock: 'unlocked the room',
  set_room_role: 'gave a room role to',
  set_role: 'changed the role of',
  resolve_report: 'resolved a report',
  warn: 'had a word with',
  care_ack: 'is looking after',
  host_rule: 'changed whether a host must be on duty',
  set_cw: 'changed the content warnings of a message by',
  appeal: 'appealed',
  resolve_appeal: 'answered an appeal by',
  set_phase: 'moved the summit to the phase',
  set_schedule: 'set the summit’s schedule',
  moderate_question: 'moderated a question',
};

async function showLog() {
  const panel = $('#log-panel');
  try {
    const reply = await state.connection.request('mod_log', { room: state.current });
    const items = reply.entries.map((entry) =>
      h(
        'li',
        {},
        h('time', { datetime: entry.ts }, formatTime(entry.ts)),
        ` ${entry.actor} ${LOG_WORDS[entry.action] || entry.action}`,
        entry.target ? ` ${entry.target}` : '',
        entry.seq ? ` (${entry.action === 'moderate_question' ? 'question' : 'message'} ${entry.seq})` : '',
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
  const sure = await confirmAction({
    title: `Make ${form.user.value} ${form.role.value === 'admin' ? 'an' : 'a'} ${form.role.value}?`,
    text: 'Their powers change at once, on every device they use.',
    confirm: `Make ${form.role.value}`,
  });
  if (!sure) return;
  try {
    await state.connection.request('set_role', { user: form.user.value, role: form.role.value });
    notify(`${form.user.value} is now ${form.role.value === 'admin' ? 'an' : 'a'} ${form.role.value}.`);
    form.reset();
  } catch (error) {
    failed(error);
  }
}
