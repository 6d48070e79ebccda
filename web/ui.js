// Page helpers every part of the client uses: notices, the screen-reader announcer,
// and how times are written.

import { ApiError } from './api.js';
import { $, fill, h } from './dom.js';
import { plainMessage } from './words.js';

/** How long a notice stays before it clears itself. */
const NOTICE_MS = 20_000;
let noticeTimer = null;

export const formatTime = (iso) =>
  new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
export const formatClock = (iso) => new Intl.DateTimeFormat(undefined, { timeStyle: 'short' }).format(new Date(iso));
export const untilText = (until) => (until ? `until ${formatTime(until)}` : 'until a moderator lifts it');

// ---------------------------------------------------------------------------------
// Notices and announcements
// ---------------------------------------------------------------------------------

export function notify(text) {
  const notice = $('#notice');
  fill(notice, h('span', {}, text), h('button', { type: 'button', class: 'quiet', onclick: () => (notice.hidden = true) }, 'Dismiss'));
  notice.hidden = false;
  // A notice is news, not a state: it goes by itself (states have their own places,
  // like the composer's line for a mute).
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), NOTICE_MS);
}

export function announce(text) {
  $('#announcer').textContent = text;
}

export function failed(error) {
  notify(error instanceof ApiError ? plainMessage(error.code, error.message) : 'Something went wrong. Please try again.');
}
