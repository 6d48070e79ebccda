// Closed groups (PROTOCOL §9.4) in the page: the invite-code field when the network
// registers by invitation, joining a room by its name (private rooms are not listed),
// the "waiting for a moderator" answer, and the moderators' join-request queue with
// invitations.

import { $, fill, h } from './dom.js';
import { failed, formatTime, notify, showQueue } from './ui.js';

/** The client's state and page hooks, set by `installGroups`. */
let state;
let page;

/** Wires the forms; `hooks` holds the page's `openRoom(name)`. */
export function installGroups(appState, hooks) {
  state = appState;
  page = hooks;
  $('#join-name-form').addEventListener('submit', joinByName);
  $('#show-join-requests').addEventListener('click', showJoinRequests);
  $('#invite-form').addEventListener('submit', inviteSomeone);
  $('#invite-code-form').addEventListener('submit', makeInviteCode);
  showRegistration();
}

/** Asks the server how it registers, and shows the form that fits. */
async function showRegistration() {
  let mode = 'open';
  try {
    const response = await fetch('/api/v1/registration');
    if (response.ok) mode = (await response.json()).mode;
  } catch {
    // Offline: the form stays as it is, and registering says why it failed.
  }
  const invite = $('#register-invite');
  invite.required = mode === 'invite';
  $('#invite-field').hidden = mode !== 'invite';
  $('#register-form').hidden = mode === 'closed';
  $('#registration-closed').hidden = mode !== 'closed';
}

/** The invite code typed on the registration form, if it is asked for. */
export function inviteCode() {
  return $('#invite-field').hidden ? undefined : $('#register-invite').value.trim() || undefined;
}

async function joinByName(event) {
  event.preventDefault();
  const input = $('#join-name');
  const name = input.value.trim().replace(/^#/, '').toLowerCase();
  if (!name) return;
  input.value = '';
  await page.openRoom(name);
}

/** `join` answered `pending`: the room's moderators have the request. */
export function joinPending(room) {
  notify(`#${room} is a private room: your request to join is with its moderators. You will hear when they answer.`);
}

/** A moderator said no (`join_refused`). */
export function joinRefused(room) {
  notify(`Your request to join #${room} was not accepted.`);
}

/** Someone asks to join a room this page moderates (`join_request`). */
export function joinRequested(room, user) {
  if (room === state.current && !$('#join-requests-panel').hidden) {
    showJoinRequests();
    return;
  }
  notify(`${user.display_name} (@${user.username}) asks to join #${room}.`);
}

async function showJoinRequests() {
  const room = state.current;
  const panel = $('#join-requests-panel');
  try {
    const reply = await state.connection.request('join_requests', { room });
    const items = reply.requests.map((request) => requestItem(room, request));
    showQueue(panel, { title: 'Asking to join', items, empty: 'Nobody is waiting.' });
  } catch (error) {
    failed(error);
  }
}

function requestItem(room, request) {
  const { user } = request;
  const answer = async (approve) => {
    try {
      await state.connection.request('approve_join', { room, user: user.username, approve });
      notify(approve ? `${user.display_name} is now a member of #${room}.` : `${user.display_name} was told no.`);
      await showJoinRequests();
    } catch (error) {
      failed(error);
    }
  };
  return h(
    'li',
    {},
    h('p', {}, h('strong', {}, user.display_name), ` @${user.username} asked at ${formatTime(request.ts)}.`),
    h(
      'div',
      { class: 'actions', role: 'group', 'aria-label': `Answer ${user.display_name}` },
      h('button', { type: 'button', class: 'small', onclick: () => answer(true) }, 'Let in'),
      h('button', { type: 'button', class: 'small', onclick: () => answer(false) }, 'Say no'),
    ),
  );
}

async function inviteSomeone(event) {
  event.preventDefault();
  const input = $('#invite-user');
  const user = input.value.trim().replace(/^@/, '');
  if (!user) return;
  try {
    await state.connection.request('invite', { room: state.current, user });
    input.value = '';
    notify(`@${user} is now a member of #${state.current}.`);
  } catch (error) {
    failed(error);
  }
}

/** A global moderator makes an invite code for newcomers; it is shown this once. */
async function makeInviteCode(event) {
  event.preventDefault();
  const form = event.target;
  const fields = { uses: Number(form.uses.value) || 1 };
  if (form.days.value) fields.expires_in_s = Number(form.days.value) * 86_400;
  try {
    const { invite } = await state.connection.request('create_invite', fields);
    const until = invite.expires_at ? `, until ${formatTime(invite.expires_at)}` : '';
    fill(
      $('#invite-code-result'),
      'New code: ',
      h('code', {}, invite.code),
      ` (for ${invite.uses} ${invite.uses === 1 ? 'person' : 'people'}${until}). It is shown only now: copy it.`,
    );
    $('#invite-code-result').hidden = false;
  } catch (error) {
    failed(error);
  }
}

/** What a room's privacy means, for its header and preview. */
export function privacyFacts(room) {
  return [
    room.visibility === 'private' ? 'Private: members join with a moderator’s approval' : null,
    room.history_visibility === 'since_join' ? 'Newcomers see only what is said after they join' : null,
  ].filter(Boolean);
}

/** The "Private" badge in the room list. */
export function privateBadge(room) {
  return room.visibility === 'private' ? h('span', { class: 'badge private' }, 'Private') : null;
}
