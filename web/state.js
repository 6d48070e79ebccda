// The web client's state that needs no page and no network: each room's messages kept
// once per seq, the rooms' views, and the unsent message. Tested with `node --test web/`.

/**
 * One room's messages, once per seq, with the seqs kept sorted so the lowest and the
 * highest are read in O(1) and the place of a new message is found in O(log n).
 */
export class Timeline {
  constructor() {
    /** seq → Message */
    this.messages = new Map();
    /** Every seq held, ascending. */
    this.seqs = [];
  }

  /** The lowest seq held, or null when empty. */
  get lowest() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  /** The highest seq held, or 0 when empty (so `history after=highest` starts at 1). */
  get highest() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  get size() {
    return this.seqs.length;
  }

  get(seq) {
    return this.messages.get(seq);
  }

  /**
   * Merges `message`: 'added' if its seq is new, 'changed' if it replaces what was held
   * (a deletion, a later edit, or the same message seen another way: revealed, or with
   * its content warning changed), 'duplicate' if it was already known as it is or newer.
   */
  add(message) {
    const known = this.messages.get(message.seq);
    if (known) {
      const changed = message.deleted || editedAfter(message, known) || seenOtherwise(message, known);
      if (known.deleted || !changed) return 'duplicate';
      this.messages.set(message.seq, message);
      return 'changed';
    }
    this.messages.set(message.seq, message);
    // Live messages and catch-up arrive in order: appending is the common case.
    if (message.seq > this.highest) {
      this.seqs.push(message.seq);
    } else {
      this.seqs.splice(this.#indexAbove(message.seq), 0, message.seq);
    }
    return 'added';
  }

  /** The seq held right after `seq` (where a new message goes before), or null. */
  next(seq) {
    const index = this.#indexAbove(seq);
    return index < this.seqs.length ? this.seqs[index] : null;
  }

  /**
   * Whether a live message with `seq` would leave a hole after what is held (which
   * the client then fills from history). An empty timeline has no hole to speak of.
   */
  gapBefore(seq) {
    return this.seqs.length > 0 && seq > this.highest + 1;
  }

  /** Messages in seq order. */
  /** Up to `n` messages before `seq` (or the newest `n` when `seq` is null), in order. */
  slice(n, seq = null) {
    const end = seq === null ? this.seqs.length : this.#indexAbove(seq - 1);
    return this.seqs.slice(Math.max(0, end - n), end).map((s) => this.messages.get(s));
  }

  *inOrder() {
    for (const seq of this.seqs) yield this.messages.get(seq);
  }

  /** The index of the first seq above `seq` (binary search). */
  #indexAbove(seq) {
    let low = 0;
    let high = this.seqs.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.seqs[middle] <= seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/** What the page keeps for one room it has shown or heard about. */
export function newRoomView() {
  return {
    timeline: new Timeline(),
    elements: new Map(), // seq → <li>
    online: new Map(), // username → User
    typing: new Map(), // username → timer
    moderator: false, // from the server's `my_role` in the join reply
    muted: null, // { until, reason } or { text } while I am muted here
    reacted: new Set(), // `${seq} ${emoji}` I reacted with from this page
    members: null, // [Member] from the server's `members`, online first; null until asked
    quoting: new Map(), // seq not held yet → seqs of the replies quoting it, drawn again when it comes
  };
}

/** Room views by name. Reading never creates one: only `ensure` does. */
export class RoomViews {
  constructor(create = newRoomView) {
    this.views = new Map();
    this.create = create;
  }

  /** The room's view, or undefined if it has none. */
  get(room) {
    return this.views.get(room);
  }

  /** The room's view, made if it has none. */
  ensure(room) {
    let view = this.views.get(room);
    if (!view) {
      view = this.create();
      this.views.set(room, view);
    }
    return view;
  }

  has(room) {
    return this.views.has(room);
  }

  /** Every room's view. */
  values() {
    return this.views.values();
  }

  delete(room) {
    this.views.delete(room);
  }

  /** Forgets every room (logging out). */
  clear() {
    this.views.clear();
  }
}

/** A connection that stayed up this long made the back-off start again from 1 s. */
export const STABLE_AFTER_MS = 30_000;

/**
 * How long to wait before reconnecting attempt `attempt` (1, 2, ...): 1, 2, 4 ... at
 * most 15 s, times 0.75–1.25 from `random` (0–1) so clients do not reconnect in step.
 */
export function reconnectDelay(attempt, random) {
  return Math.min(15_000, 1000 * 2 ** (attempt - 1)) * (0.75 + random / 2);
}

/**
 * The unsent message for sending `body` in `room`: the same text in the same room
 * keeps the id of the earlier attempt (so a retry after a lost answer is stored once),
 * anything else gets a new id from `newId`.
 */
export function unsentFor(unsent, room, body, newId) {
  if (unsent && unsent.room === room && unsent.body === body) return unsent;
  return { room, body, client_msg_id: newId() };
}

/** Whether `message` carries a later edit than `known` (timestamps are ISO 8601 UTC). */
/**
 * The same message with another shape (whole, collapsed, hidden) or other warnings. A
 * message held back again (a catch-up after a reconnect) does not fold away one the
 * reader has revealed, unless its warning changed since.
 */
function seenOtherwise(message, known) {
  const warning = (m) => [(m.cw || []).join(), m.cw_note || ''].join('|');
  const heldBack = (m) => Boolean(m.hidden || m.collapsed);
  if (Boolean(message.blocked) !== Boolean(known.blocked)) return true;
  if (warning(message) !== warning(known)) return true;
  if (heldBack(message) && !heldBack(known)) return false;
  return message.hidden !== known.hidden || message.collapsed !== known.collapsed;
}

function editedAfter(message, known) {
  return Boolean(message.edited_at) && (!known.edited_at || message.edited_at > known.edited_at);
}
