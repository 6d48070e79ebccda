// Summits on stage: the questions panel (ask, with or without one's name; vote; and
// for moderators the approve / answer / dismiss queue) and the organisers' control that
// moves a summit from phase to phase. The server decides who may do what; the page
// shows only what can succeed.

import { $, fill, h } from './dom.js';
import { announce, failed } from './ui.js';

/** The client's state and the page's `view(room)`, set by `installSummit`. */
let state;
let page;

/** The questions shown, by id, for the room on screen. */
let shown = new Map();
let shownRoom = null;

/** Phases in which questions are taken. */
const TAKING_QUESTIONS = new Set(['stage', 'qa']);

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
