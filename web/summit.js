// Summits on stage: the questions panel (ask, with or without one's name; vote; and
// for moderators the approve / answer / dismiss queue) and the organisers' control that
// moves a summit from phase to phase. The server decides who may do what; the page
// shows only what can succeed.

import { $, fill, h } from './dom.js';
import { announce, failed, formatZoned, timeZone } from './ui.js';

/** The client's state and the page's `view(room)`, set by `installSummit`. */
let state;
let page;

/** The questions shown, by id, for the room on screen. */
let shown = new Map();
let shownRoom = null;

/** Phases in which questions are taken. */
const TAKING_QUESTIONS = new Set(['stage', 'qa']);

/** What the banner calls each phase. */
const PHASE_NAMES = {
  scheduled: 'Not begun',
  lobby: 'Lobby',
  stage: 'On stage',
  qa: 'Questions and answers',
  hallway: 'Hallway',
  closed: 'Closed',
};

/** What the phase control calls each phase. */
const PHASES = [
  ['scheduled', 'Scheduled (not begun)'],
  ['lobby', 'Lobby (announcements)'],
  ['stage', 'On stage'],
  ['qa', 'Questions and answers'],
  ['hallway', 'Hallway (open conversation)'],
  ['closed', 'Closed (to read)'],
];

/** Wires the panel and the phase control to the page over the client's `appState`. */
export function installSummit(appState, hooks) {
  state = appState;
  page = hooks;
  const select = $('#phase-select');
  for (const [phase, label] of PHASES) select.append(h('option', { value: phase }, label));
  $('#phase-form').addEventListener('submit', movePhase);
  $('#ask-form').addEventListener('submit', ask);
  $('#programme').addEventListener('toggle', renderProgramme);
  // The banner's countdown moves on by itself; the phase changes come as events.
  setInterval(renderBanner, 1000);
}

/** `ms` as a countdown: "3 d 04 h", "2 h 05 min", "12 min 04 s", "45 s". */
export function countdown(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (d >= 2) return `${d} d ${two(h)} h`;
  if (d) return `${24 + h} h ${two(m)} min`;
  if (h) return `${h} h ${two(m)} min`;
  if (m) return `${m} min ${two(s)} s`;
  return `${s} s`;
}

/** The phase the room on screen is in, and when the next one begins. */
function renderBanner() {
  const banner = $('#phase-banner');
  const room = state?.rooms.get(state.current);
  if (!banner || !room || room.kind !== 'summit' || !room.phase) {
    if (banner) banner.hidden = true;
    return;
  }
  const now = Date.now();
  const next = (room.schedule || []).find((entry) => Date.parse(entry.at) > now);
  const coming = next ? ` · ${PHASE_NAMES[next.phase]} in ${countdown(Date.parse(next.at) - now)}` : '';
  fill(banner, `${PHASE_NAMES[room.phase] || room.phase}${coming}`);
  banner.hidden = false;
}

/** When a summit's event is: an imported session's own times, else its window. */
function eventTimes(room) {
  const start = room.session_starts_at || room.starts_at;
  const end = room.session_ends_at || room.ends_at;
  return start ? { start, end } : null;
}

const clockIn = new Map();
/** The wall-clock time of `iso` in `zone` ("09:00"). */
function clockOf(iso, zone) {
  let format = clockIn.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZone: zone });
    clockIn.set(zone, format);
  }
  return format.format(new Date(iso));
}

/**
 * The programme: every summit with a time, soonest first, in this browser's zone (named),
 * with the time in the zone it was given in when that differs, and "add to calendar".
 */
export function renderProgramme() {
  // The room list redraws on every unread count; a closed programme waits until opened.
  if (!$('#programme').open) return;
  const zone = timeZone();
  fill($('#programme-zone'), `Times are in your time zone, ${zone}.`);
  const summits = [...state.rooms.values()]
    .filter((room) => room.kind === 'summit' && eventTimes(room))
    .sort((a, b) => Date.parse(eventTimes(a).start) - Date.parse(eventTimes(b).start));
  const items = summits.map((room) => {
    const { start, end } = eventTimes(room);
    const sameDay = end && new Date(start).toDateString() === new Date(end).toDateString();
    const when = end ? `${formatZoned(start)} to ${sameDay ? clockOf(end, zone) : formatZoned(end)}` : formatZoned(start);
    const given = room.time_zone && room.time_zone !== zone ? ` · ${clockOf(start, room.time_zone)} in ${room.time_zone}` : '';
    const phase = room.phase ? ` · ${PHASE_NAMES[room.phase]}` : '';
    const calendar = room.visibility === 'private'
      ? null
      : h('a', {
        href: `/api/v1/summits.ics?room=${encodeURIComponent(room.name)}`,
        download: `${room.name}.ics`,
        class: 'quiet-link',
        'aria-label': `Add to calendar: ${room.topic || `#${room.name}`}`,
      }, 'Add to calendar');
    return h('li', { class: 'programme-item', 'data-room': room.name },
      h('span', { class: 'programme-time' }, when),
      h('span', {}, room.topic || `#${room.name}`),
      h('span', { class: 'programme-meta' }, `#${room.name}${given}${phase}`),
      calendar);
  });
  fill($('#programme-list'), items.length ? items : h('li', { class: 'hint' }, 'No events are scheduled.'));
}

/** Draws the summit parts of the room on screen: the phase control and the panel. */
export function renderSummit(room, roomView) {
  const summit = room.kind === 'summit';
  $('#phase-form').hidden = !summit || !roomView.moderator;
  if (summit && room.phase) $('#phase-select').value = room.phase;
  const taking = summit && TAKING_QUESTIONS.has(room.phase);
  const panel = $('#qa-panel');
  const wasHidden = panel.hidden;
  panel.hidden = !taking;
  // Speakers and moderators keep their composer; the audience asks instead.
  const speaker = (room.speakers || []).includes(state.me.username);
  $('#composer').hidden = Boolean(roomView.viewer) || (taking && !roomView.moderator && !speaker);
  if (taking && (wasHidden || shownRoom !== room.name)) refreshQuestions(room.name);
  renderBanner();
}

async function movePhase(event) {
  event.preventDefault();
  try {
    await state.connection.request('set_phase', { room: state.current, phase: $('#phase-select').value });
  } catch (error) {
    failed(error);
  }
}

async function ask(event) {
  event.preventDefault();
  const body = $('#ask-input').value.trim();
  if (!body) return;
  try {
    const anonymous = $('#ask-anonymous').checked;
    await state.connection.request('ask', { room: state.current, body, anonymous });
    $('#ask-input').value = '';
    announce('Your question is with the moderators.');
    fill($('#ask-status'), 'Your question is with the moderators: it shows here once they take it.');
  } catch (error) {
    failed(error);
  }
}

/** Reads the room's questions again (moderators get the pending ones too). */
export async function refreshQuestions(roomName) {
  try {
    const reply = await state.connection.request('questions', { room: roomName, limit: 100 });
    if (state.current !== roomName) return;
    shownRoom = roomName;
    shown = new Map(reply.questions.map((question) => [question.id, question]));
    renderQuestions();
  } catch (error) {
    failed(error);
  }
}

/** A `question` event: new (for moderators) or moved on. */
export function questionArrived(event) {
  if (event.room !== state.current || shownRoom !== event.room) return;
  const known = shown.get(event.question.id);
  // Events leave out `voted`; what this member did stays as it was.
  shown.set(event.question.id, { ...event.question, voted: known?.voted ?? false });
  renderQuestions();
}

/** A `question_votes` event: one question's count now. */
export function votesArrived(event) {
  const question = shown.get(event.question_id);
  if (event.room !== state.current || !question) return;
  question.votes = event.votes;
  renderQuestions();
}

const ORDER = { approved: 0, answered: 1, pending: 2, dismissed: 3 };

function renderQuestions() {
  const moderator = page.view(state.current).moderator;
  const questions = [...shown.values()]
    .filter((q) => moderator || q.status === 'approved' || q.status === 'answered')
    .filter((q) => q.status !== 'dismissed')
    .sort((a, b) => ORDER[a.status] - ORDER[b.status] || b.votes - a.votes || a.id - b.id);
  const list = $('#question-list');
  if (!questions.length) {
    list.replaceChildren(h('li', { class: 'quiet' }, 'No questions yet.'));
    return;
  }
  list.replaceChildren(...questions.map((question) => questionItem(question, moderator)));
}

function questionItem(question, moderator) {
  const who = question.author
    ? `${question.author.display_name}${question.anonymous ? ' (asked without their name)' : ''}`
    : 'Someone';
  const actions = [];
  if (question.status === 'approved') {
    const label = question.voted ? `Voted · ${question.votes}` : `Vote · ${question.votes}`;
    actions.push(h('button', {
      type: 'button', class: 'vote', 'aria-pressed': String(Boolean(question.voted)),
      onclick: () => vote(question),
    }, label));
  } else {
    actions.push(h('span', { class: 'votes' }, `${question.votes} ${question.votes === 1 ? 'vote' : 'votes'}`));
  }
  if (moderator) {
    const next = { pending: ['approved', 'dismissed'], approved: ['answered', 'dismissed'], answered: [] }[question.status] || [];
    const words = { approved: 'Take it', answered: 'Mark answered', dismissed: 'Set aside' };
    for (const status of next) {
      actions.push(h('button', { type: 'button', class: 'quiet', onclick: () => moderate(question, status) }, words[status]));
    }
  }
  const status = { pending: 'Waiting for a moderator', answered: 'Answered' }[question.status];
  return h('li', { class: `question ${question.status}`, 'data-id': String(question.id) },
    h('p', { class: 'question-body' }, question.body),
    h('p', { class: 'question-meta' }, status ? `${who} · ${status}` : who),
    h('div', { class: 'question-actions' }, ...actions));
}

async function vote(question) {
  try {
    const reply = await state.connection.request(question.voted ? 'unvote' : 'upvote', {
      room: state.current, question_id: question.id,
    });
    shown.set(question.id, reply.question);
    renderQuestions();
  } catch (error) {
    failed(error);
  }
}

async function moderate(question, status) {
  try {
    await state.connection.request('moderate_question', { room: state.current, question_id: question.id, status });
    shown.set(question.id, { ...question, status });
    renderQuestions();
  } catch (error) {
    failed(error);
  }
}
