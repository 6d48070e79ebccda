// Page helpers every part of the client uses: notices, the screen-reader announcer,
// and how times are written.

import { ApiError } from './api.js';
import { $, fill, h } from './dom.js';
import { plainMessage } from './words.js';

/** How long a notice stays before it clears itself. */
const NOTICE_MS = 20_000;
let noticeTimer = null;

// Formatters are made once: making one costs far more than using it, and a room
// switch formats two times for each of up to 200 messages.
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const clockFormat = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
export const formatTime = (iso) => timeFormat.format(new Date(iso));
export const formatClock = (iso) => clockFormat.format(new Date(iso));
/** A time with its zone named, for schedules people in many zones read. */
const zonedFormat = new Intl.DateTimeFormat(undefined, {
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: 'numeric',
    minute: '2-digit',
    timeZoneName: 'short',
});
export const formatZoned = (iso) => zonedFormat.format(new Date(iso));
/** This browser's time zone, as its name ("Europe/Dublin"). */
export const timeZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;
/** The day a message belongs to, written out: the separator between days shows it. */
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const days = new Map();
export function dayOf(iso) {
  const date = new Date(iso);
  const key = date.getFullYear() * 400 + date.getMonth() * 32 + date.getDate();
  let text = days.get(key);
  if (text === undefined) {
    text = dayFormat.format(date);
    days.set(key, text);
  }
  return text;
}
export const untilText = (until) => (until ? `until ${formatTime(until)}` : 'until a moderator lifts it');

// ---------------------------------------------------------------------------------
// Notices and announcements
// ---------------------------------------------------------------------------------

export function notify(text) {
  const notice = $('#notice');
  // After a quick exit the page is blank: nothing to say.
  if (!notice) return;
  fill(notice, h('span', {}, text), h('button', { type: 'button', class: 'quiet', onclick: () => (notice.hidden = true) }, 'Dismiss'));
  notice.hidden = false;
  // A notice is news, not a state: it goes by itself (states have their own places,
  // like the composer's line for a mute).
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), NOTICE_MS);
}

export function announce(text) {
  const announcer = $('#announcer');
  if (announcer) announcer.textContent = text;
}

export function failed(error) {
  notify(error instanceof ApiError ? plainMessage(error.code, error.message) : 'Something went wrong. Please try again.');
}

/**
 * Asks in the page's own dialog before something that cannot be undone; resolves true
 * only when the person chose `confirm` (the button says what will happen).
 */
export function confirmAction({ title, text, confirm }) {
  const dialog = $('#confirm-dialog');
  fill($('#confirm-title'), title);
  fill($('#confirm-text'), text);
  fill($('#confirm-yes'), confirm);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.onclose = () => resolve(dialog.returnValue === 'confirm');
    dialog.showModal();
  });
}

/**
 * Shows a moderators' queue in `panel`: its title, the items (or `empty` when there
 * are none), and `more` when the server holds further ones.
 */
export function showQueue(panel, { title, items, empty, more }) {
  fill(
    panel,
    h('h3', {}, title),
    items.length ? h('ul', { class: 'report-list' }, items) : h('p', {}, empty),
    more ? h('p', { class: 'since' }, more) : null,
  );
  panel.hidden = false;
}
