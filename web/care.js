// Crisis support in the page: the support lines (a private card after one's own message
// said one may be in crisis, and "Get support" from anywhere, logged in or not), and the
// care-alert queue for moderators. Nothing here is ever shown about another member.

import { $, fill, h } from './dom.js';
import { resources as fetchResources } from './api.js';
import { failed, formatTime, notify, showQueue } from './ui.js';

/** The client's state and page hooks, set by `installCare`. */
let state;
let page;

/** Wires "Get support" and the care queue; `hooks` are the page's `jumpTo(room, seq)`. */
export function installCare(appState, hooks) {
  state = appState;
  page = hooks;
  $('#get-support').addEventListener('click', () => openSupport());
  $('#support-region').addEventListener('change', regionChosen);
  $('#show-care').addEventListener('click', showCareAlerts);
}

/**
 * The region the reader is most likely in: their own setting, else the country of the
 * browser's language (`en-GB` → `GB`), else none (the international lines).
 */
export function guessRegion(me, languages) {
  if (me && me.region) return me.region;
  for (const tag of languages || []) {
    const country = tag.split('-')[1];
    if (country && /^[A-Za-z]{2}$/.test(country)) return country.toUpperCase();
  }
  return '';
}

/**
 * Opens the support card. After one's own message (`care_resources`), `resources` come
 * with the event and the words say so; from "Get support" they are fetched.
 */
export async function openSupport({ resources, afterMessage = false } = {}) {
  const dialog = $('#support-dialog');
  fill(
    $('#support-intro'),
    afterMessage
      ? 'What you wrote reached the room as you wrote it. You are not alone: if you would like to talk to someone now, these services are free and confidential.'
      : 'If things feel too much, you do not have to wait. These services are free and confidential.',
  );
  const region = guessRegion(state.me, navigator.languages);
  const select = $('#support-region');
  select.value = [...select.options].some((o) => o.value === region) ? region : '';
  // The server chose by the member's own region; without one, the browser's country
  // is a better guess than the international lines alone.
  const fromServer = resources && (state.me?.region || !select.value);
  try {
    renderResources(fromServer ? resources : (await fetchResources(select.value)).resources);
  } catch (error) {
    failed(error);
    if (resources) renderResources(resources);
  }
  if (!dialog.open) dialog.showModal();
}

async function regionChosen() {
  const region = $('#support-region').value;
  try {
    renderResources((await fetchResources(region)).resources);
    // Kept for next time, for this member only (never shown to anyone else).
    if (state.connection && state.me && region) {
      const reply = await state.connection.request('set_profile', { region });
      state.me.region = reply.user.region;
    }
  } catch (error) {
    failed(error);
  }
}

function renderResources(resources) {
  const items = resources.map((resource) =>
    h('li', { class: 'resource' }, [
      h('strong', {}, resource.name),
      resource.phone ? h('p', {}, ['Call ', h('a', { href: `tel:${resource.phone.replace(/[^0-9+]/g, '')}` }, resource.phone)]) : null,
      resource.text ? h('p', {}, resource.text) : null,
      resource.hours ? h('p', { class: 'since' }, resource.hours) : null,
      resource.note ? h('p', {}, resource.note) : null,
      resource.url ? h('p', {}, h('a', { href: resource.url, target: '_blank', rel: 'noopener noreferrer' }, new URL(resource.url).host)) : null,
    ]),
  );
  fill($('#support-list'), items);
}

// ---------------------------------------------------------------------------------
// Care alerts, for moderators
// ---------------------------------------------------------------------------------

let unseenAlerts = 0;

/** A care alert arrived (or a colleague acknowledged one). */
export function careAlertArrived(alert) {
  if (alert.acked_by) {
    if (!$('#care-panel').hidden && alert.room === state.current) showCareAlerts();
    return;
  }
  notify(`Care alert in #${alert.room}: ${alert.author.display_name} may need support. Please look in, and acknowledge it in the moderator tools.`);
  if (alert.room !== state.current) return;
  if (!$('#care-panel').hidden) {
    showCareAlerts();
    return;
  }
  unseenAlerts += 1;
  showUnseen();
}

function showUnseen() {
  fill($('#show-care'), unseenAlerts ? `Care alerts (${unseenAlerts} new)` : 'Care alerts');
  const news = $('#care-news');
  news.hidden = unseenAlerts === 0;
  fill(news, `${unseenAlerts} care alert${unseenAlerts === 1 ? '' : 's'}`);
}

async function showCareAlerts() {
  const room = state.current;
  const panel = $('#care-panel');
  unseenAlerts = 0;
  showUnseen();
  try {
    const reply = await state.connection.request('care_alerts', { room, limit: 200 });
    const items = reply.alerts.map((alert) => alertItem(room, alert));
    showQueue(panel, { title: 'Care alerts', items, empty: 'No open care alerts.' });
  } catch (error) {
    failed(error);
  }
}

function alertItem(room, alert) {
  const why = alert.kind === 'referral'
    ? `${alert.by} asked the moderators to look in${alert.note ? `: “${alert.note}”` : '.'}`
    : 'Their message may mean they are in crisis. They have been shown support lines.';
  return h('li', { class: 'care-alert' }, [
    h('p', {}, [h('strong', {}, alert.author.display_name), ` (@${alert.author.username}), ${formatTime(alert.ts)}`]),
    h('p', {}, why),
    h('div', { class: 'dialog-buttons start' }, [
      h('button', { type: 'button', class: 'small', onclick: () => page.jumpTo(room, alert.seq) }, 'Go to the message'),
      h('button', { type: 'button', class: 'small', onclick: () => acknowledge(room, alert) }, 'I am looking after this'),
    ]),
  ]);
}

async function acknowledge(room, alert) {
  try {
    await state.connection.request('ack_care_alert', { room, alert_id: alert.id });
    notify('Acknowledged: the other moderators can see you are looking after it.');
    showCareAlerts();
  } catch (error) {
    failed(error);
  }
}
