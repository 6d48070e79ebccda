// One's own record and appeals (PROTOCOL §9.2): "My record" lists what moderators did
// about the member, in plain words and never with a moderator's name, each with an
// appeal; the room's moderators get the appeals queue, where they uphold or lift.

import { $, fill, h } from './dom.js';
import { failed, formatTime, notify, showQueue, untilText } from './ui.js';

/** The client's state, set by `installRecord`. */
let state;

/** What moderators did about this member, in plain words. */
const RECORD_WORDS = { warn: 'A warning', mute: 'Muted', kick: 'Removed from the room', ban: 'Banned', delete: 'A message of yours deleted' };

/** Wires "My record", the appeal dialog and the moderators' appeals queue. */
export function installRecord(appState) {
  state = appState;
  $('#show-record').addEventListener('click', showRecord);
  $('#show-appeals').addEventListener('click', () => showAppeals('room'));
  $('#show-server-appeals').addEventListener('click', () => showAppeals('server'));
}

async function showRecord() {
  const list = $('#record-list');
  try {
    const reply = await state.connection.request('my_record');
    list.hidden = false;
    if (!reply.sanctions.length) {
      fill(list, h('li', {}, 'Nothing: no moderator has acted about you.'));
      return;
    }
    fill(list, reply.sanctions.map(sanctionItem));
  } catch (error) {
    failed(error);
  }
}

/** One sanction: what, where, when, why, whether in force, and its appeal. */
function sanctionItem(sanction) {
  const appeal = sanction.appeal;
  const open = appeal && !appeal.outcome;
  return h(
    'li',
    {},
    h('strong', {}, RECORD_WORDS[sanction.action] || sanction.action),
    ` ${sanction.room ? `in #${sanction.room}` : 'on the whole server'}, ${formatTime(sanction.ts)}`,
    sanction.until && sanction.active ? `, ${untilText(sanction.until)}` : '',
    sanction.reason ? `. Reason: ${sanction.reason}` : '.',
    sanction.active ? h('span', { class: 'muted-mark' }, 'in force') : null,
    h('span', { class: 'hint' }, ` By ${/^[aeiou]/.test(sanction.by_role) ? 'an' : 'a'} ${sanction.by_role}.`),
    appeal ? h('p', { class: 'appeal-state' }, appealWords(appeal)) : null,
    open ? null : h('button', { type: 'button', class: 'small', onclick: () => openAppeal(sanction) }, appeal ? 'Appeal again' : 'Appeal'),
  );
}

/** Where an appeal stands, in the member's words. */
function appealWords(appeal) {
  if (!appeal.outcome) return `You appealed on ${formatTime(appeal.ts)}; the moderators have it.`;
  const outcome = appeal.outcome === 'lifted' ? 'lifted' : 'upheld (it stands)';
  return `Your appeal was answered on ${formatTime(appeal.resolved_at)}: ${outcome}.${appeal.note ? ` ${appeal.note}` : ''}`;
}

function openAppeal(sanction) {
  const dialog = $('#appeal-dialog');
  fill($('#appeal-summary'), `${RECORD_WORDS[sanction.action] || sanction.action} ${sanction.room ? `in #${sanction.room}` : 'on the whole server'}${sanction.reason ? `: ${sanction.reason}` : ''}`);
  $('#appeal-text').value = '';
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'confirm') return;
    const text = $('#appeal-text').value.trim();
    if (!text) return;
    try {
      await state.connection.request('appeal', { sanction_id: sanction.id, text });
      notify('Your appeal is with the moderators. You will hear their answer here.');
      await showRecord();
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

/** The member's appeal was answered (`appeal_resolved`). */
export function appealResolved(appeal) {
  const where = appeal.room ? ` in #${appeal.room}` : '';
  notify(appeal.outcome === 'lifted' ? `Your appeal${where} was accepted: the sanction is lifted.${appeal.note ? ` ${appeal.note}` : ''}` : `Your appeal${where} was answered: the sanction stands.${appeal.note ? ` ${appeal.note}` : ''}`);
  if (!$('#record-list').hidden) showRecord();
}

/** A member appealed (`appeal`, to the moderators who may answer). */
export function appealArrived(appeal) {
  if (appeal.room && appeal.room === state.current && !$('#appeals-panel').hidden) {
    showAppeals('room');
    return;
  }
  if (!appeal.room && !$('#server-appeals-panel').hidden) {
    showAppeals('server');
    return;
  }
  notify(`New appeal${appeal.room ? ` in #${appeal.room}` : ' against a server ban'} from ${appeal.user}.`);
}

/** The open appeals of the room shown (`room`) or of server bans (`server`). */
async function showAppeals(scope) {
  const panel = scope === 'room' ? $('#appeals-panel') : $('#server-appeals-panel');
  const where = scope === 'room' ? { room: state.current } : { scope: 'server' };
  try {
    const reply = await state.connection.request('appeals', { ...where, limit: 200 });
    const items = reply.appeals.map((appeal) => appealItem(appeal, scope));
    const title = scope === 'room' ? 'Open appeals' : 'Open appeals of server bans';
    const more = reply.more && 'More appeals wait: answer these to see the next ones.';
    showQueue(panel, { title, items, empty: 'No open appeals.', more });
  } catch (error) {
    failed(error);
  }
}

function appealItem(appeal, scope) {
  return h(
    'li',
    {},
    h('p', {}, h('strong', {}, appeal.user), ` appealed at ${formatTime(appeal.ts)}:`),
    h('blockquote', {}, h('span', { class: 'quoted' }, appeal.text)),
    h(
      'div',
      { class: 'actions', role: 'group', 'aria-label': `Answer ${appeal.user}’s appeal` },
      h('button', { type: 'button', class: 'small', onclick: () => answerAppeal(appeal, scope) }, 'Answer…'),
    ),
  );
}

function answerAppeal(appeal, scope) {
  const dialog = $('#answer-dialog');
  fill($('#answer-summary'), `${appeal.user} wrote: ${appeal.text}`);
  $('#answer-note').value = '';
  dialog.returnValue = '';
  dialog.onclose = async () => {
    const outcome = dialog.returnValue;
    if (outcome !== 'lifted' && outcome !== 'upheld') return;
    try {
      const note = $('#answer-note').value.trim() || undefined;
      await state.connection.request('resolve_appeal', { appeal_id: appeal.id, outcome, note });
      notify(outcome === 'lifted' ? `Lifted; ${appeal.user} has been told.` : `Upheld; ${appeal.user} has been told.`);
      await showAppeals(scope);
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}
