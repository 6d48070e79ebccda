// Keyboard structure for long lists and per-item menus, as the ARIA practices describe
// them: a list is one tab stop (the arrow keys move within it, and only the item in
// focus offers its own buttons and links to Tab), and an item's actions open in a menu
// rather than adding a row of tab stops to every message.

import { h } from './dom.js';

const CONTROLS = 'button, a[href]';

/** Takes an item and everything in it out of the tab order. */
export function quiet(item) {
  item.tabIndex = -1;
  for (const control of item.querySelectorAll(CONTROLS)) control.tabIndex = -1;
}

function activate(list, item) {
  const active = list.rovingActive;
  if (active === item) return;
  if (active) quiet(active);
  list.rovingActive = item;
  item.tabIndex = 0;
  for (const control of item.querySelectorAll(CONTROLS)) control.tabIndex = 0;
}

/**
 * Makes `list` one tab stop over its items (`selector`): Up and Down, Home and End move
 * between items; Enter on an item opens its menu (`menuButton` inside it).
 */
export function roving(list, selector, menuButton) {
  list.addEventListener('focusin', (event) => {
    const item = event.target.closest(selector);
    if (item && list.contains(item)) activate(list, item);
  });
  list.addEventListener('keydown', (event) => {
    if (!event.target.matches(selector)) return;
    const items = () => list.querySelectorAll(selector);
    let target = null;
    if (event.key === 'ArrowDown') target = sibling(event.target, selector, 'nextElementSibling');
    else if (event.key === 'ArrowUp') target = sibling(event.target, selector, 'previousElementSibling');
    else if (event.key === 'Home') target = items()[0];
    else if (event.key === 'End') target = items()[items().length - 1];
    else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      event.target.querySelector(menuButton)?.click();
      return;
    } else return;
    event.preventDefault();
    if (target) {
      activate(list, target);
      target.focus();
    }
  });
}

function sibling(item, selector, direction) {
  let next = item[direction];
  while (next && !next.matches(selector)) next = next[direction];
  return next;
}

/**
 * Keeps exactly one item reachable by Tab after the list changed: the one that was
 * (or its redrawn replacement, by `data-seq`), else the last.
 */
export function settle(list, selector) {
  let active = list.rovingActive;
  if (active && !active.isConnected) {
    active = active.dataset.seq ? list.querySelector(`${selector}[data-seq="${active.dataset.seq}"]`) : null;
    list.rovingActive = null;
  }
  const item = active || list.querySelector(`${selector}:last-of-type`) || [...list.querySelectorAll(selector)].pop();
  if (item) activate(list, item);
}

// ---------------------------------------------------------------------------------
// The one menu of actions, opened beside the button that asked for it
// ---------------------------------------------------------------------------------

let openFrom = null;

export const menuOpen = () => openFrom !== null;

/**
 * Opens the actions menu under `button` with `items` ({label, run, danger?, and for a
 * toggle shown small: glyph, checked, row}); the arrows move, Enter runs, Esc or Tab
 * closes and gives focus back to the button.
 */
export function openMenu(button, label, items) {
  closeMenu();
  const menu = document.getElementById('action-menu');
  menu.setAttribute('aria-label', label);
  const entry = (item) =>
    h(
      'button',
      {
        type: 'button',
        // A toggle (a reaction) says whether it is on; the rest are plain actions.
        role: item.checked === undefined ? 'menuitem' : 'menuitemcheckbox',
        'aria-checked': item.checked === undefined ? null : String(item.checked),
        'aria-label': item.glyph ? item.label : null,
        title: item.glyph ? item.label : null,
        tabindex: '-1',
        class: item.danger ? 'danger' : null,
        onclick: () => {
          closeMenu(false);
          item.run();
        },
      },
      item.glyph || item.label,
    );
  // Items that share a `row` (the reactions) sit side by side in one line.
  const lines = [];
  for (const item of items) {
    const last = lines.at(-1);
    if (item.row && last?.row === item.row) last.items.push(item);
    else lines.push({ row: item.row, items: [item] });
  }
  menu.replaceChildren(
    ...lines.map((line) => h('li', { role: 'none', class: line.row ? 'menu-row' : null }, line.items.map(entry))),
  );
  const box = button.getBoundingClientRect();
  menu.hidden = false;
  // Below the button, kept inside the window.
  const top = Math.min(box.bottom + 4, window.innerHeight - menu.offsetHeight - 8);
  menu.style.top = `${Math.max(8, top)}px`;
  menu.style.left = `${Math.max(8, Math.min(box.right - menu.offsetWidth, window.innerWidth - menu.offsetWidth - 8))}px`;
  openFrom = button;
  button.setAttribute('aria-expanded', 'true');
  menu.querySelector('[role=menuitem], [role=menuitemcheckbox]')?.focus();
}

/** Closes the menu; focus goes back to its button unless an item takes it elsewhere. */
export function closeMenu(refocus = true) {
  const menu = document.getElementById('action-menu');
  if (!openFrom || !menu) return;
  const button = openFrom;
  openFrom = null;
  menu.hidden = true;
  menu.replaceChildren();
  button.setAttribute('aria-expanded', 'false');
  if (refocus && button.isConnected) button.focus();
}

export function installMenu() {
  const menu = document.getElementById('action-menu');
  menu.addEventListener('keydown', (event) => {
    const items = [...menu.querySelectorAll('[role=menuitem], [role=menuitemcheckbox]')];
    const at = items.indexOf(document.activeElement);
    let to = null;
    if (event.key === 'ArrowDown' || event.key === 'ArrowRight') to = (at + 1) % items.length;
    else if (event.key === 'ArrowUp' || event.key === 'ArrowLeft') to = (at - 1 + items.length) % items.length;
    else if (event.key === 'Home') to = 0;
    else if (event.key === 'End') to = items.length - 1;
    else if (event.key === 'Escape') {
      event.preventDefault();
      closeMenu();
      return;
    } else if (event.key === 'Tab') {
      closeMenu();
      return;
    } else return;
    event.preventDefault();
    items[to]?.focus();
  });
  document.addEventListener('pointerdown', (event) => {
    if (openFrom && !menu.contains(event.target) && event.target !== openFrom) closeMenu(false);
  });
}
