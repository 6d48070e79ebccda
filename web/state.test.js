// Unit tests of the client's pure state (node --test web/).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reconnectDelay, RoomViews, Timeline, unsentFor } from './state.js';

const message = (seq, extra = {}) => ({ seq, room: 'r', body: `m${seq}`, ...extra });

describe('Timeline', () => {
  it('keeps each seq once, in order, whatever order they arrive in', () => {
    const timeline = new Timeline();
    for (const seq of [5, 1, 3, 2, 4, 3, 5]) timeline.add(message(seq));
    assert.deepEqual([...timeline.inOrder()].map((m) => m.seq), [1, 2, 3, 4, 5]);
    assert.equal(timeline.size, 5);
    assert.equal(timeline.add(message(2)), 'duplicate');
  });

  it('knows its lowest and highest seq at once, and where a new one goes', () => {
    const timeline = new Timeline();
    assert.equal(timeline.lowest, null);
    assert.equal(timeline.highest, 0, 'catching up an empty room starts after 0');
    for (const seq of [10, 20, 30]) timeline.add(message(seq));
    assert.equal(timeline.lowest, 10);
    assert.equal(timeline.highest, 30);
    assert.equal(timeline.next(15), 20, 'a message 15 goes before 20');
    assert.equal(timeline.next(30), null, 'after the last: at the end');
    assert.equal(timeline.next(0), 10);
  });

  it('lets a revealed or re-warned message replace the collapsed one it was', () => {
    const timeline = new Timeline();
    timeline.add({ seq: 1, room: 'r', cw: ['grief'], collapsed: true });
    assert.equal(timeline.add({ seq: 1, room: 'r', cw: ['grief'], collapsed: true }), 'duplicate');
    assert.equal(timeline.add(message(1, { cw: ['grief'] })), 'changed', 'revealed: the body now');
    assert.equal(timeline.get(1).body, 'm1');
    assert.equal(timeline.add(message(1, { cw: ['grief', 'suicide'] })), 'changed', 'a moderator added a tag');
    assert.equal(
      timeline.add({ seq: 1, room: 'r', cw: ['grief', 'suicide'], collapsed: true }),
      'duplicate',
      'a catch-up does not fold away what the reader revealed',
    );
    assert.equal(timeline.add({ seq: 1, room: 'r', hidden: true, cw: ['grief'] }), 'changed', 'the warning changed');
    assert.equal(timeline.add({ seq: 1, room: 'r', hidden: true, cw: ['grief'] }), 'duplicate');
    assert.equal(timeline.add({ seq: 1, room: 'r', collapsed: true, cw: ['grief'] }), 'changed', 'preferences changed');
  });

  it('lets a deletion replace the message, but not the other way round', () => {
    const timeline = new Timeline();
    timeline.add(message(1));
    assert.equal(timeline.add(message(1, { deleted: true, body: undefined })), 'changed');
    assert.equal(timeline.get(1).deleted, true);
    assert.equal(timeline.add(message(1)), 'duplicate', 'a stale copy never undoes a deletion');
    assert.equal(timeline.get(1).deleted, true);
  });

  it('takes a later edit, never an older copy, and no edit of a deleted message', () => {
    const timeline = new Timeline();
    timeline.add(message(1));
    const first = message(1, { body: 'first edit', edited_at: '2026-11-27T10:00:00.000Z' });
    const second = message(1, { body: 'second edit', edited_at: '2026-11-27T10:05:00.000Z' });
    assert.equal(timeline.add(first), 'changed');
    assert.equal(timeline.add(second), 'changed');
    assert.equal(timeline.add(first), 'duplicate', 'a slower copy of an older edit does not win');
    assert.equal(timeline.add(message(1)), 'duplicate', 'nor does the unedited original');
    assert.equal(timeline.get(1).body, 'second edit');
    timeline.add(message(1, { deleted: true, body: undefined }));
    const late = message(1, { body: 'late', edited_at: '2026-11-27T10:09:00.000Z' });
    assert.equal(timeline.add(late), 'duplicate');
    assert.equal(timeline.get(1).deleted, true);
  });

  it('sees a hole after what it holds', () => {
    const timeline = new Timeline();
    assert.equal(timeline.gapBefore(7), false, 'nothing held: no hole to fill');
    timeline.add(message(1));
    timeline.add(message(2));
    assert.equal(timeline.gapBefore(3), false);
    assert.equal(timeline.gapBefore(5), true);
  });

  it('holds a long history, appended and paged backwards', () => {
    const timeline = new Timeline();
    for (let seq = 1; seq <= 100_000; seq += 1) timeline.add(message(seq));
    // Older pages arrive below what is held, each in one splice.
    const older = new Timeline();
    for (let seq = 100_000; seq >= 1; seq -= 100) older.add(message(seq));
    assert.equal(timeline.highest, 100_000);
    assert.equal(timeline.size, 100_000);
    assert.equal(older.lowest, 100);
    assert.deepEqual([...older.inOrder()].slice(0, 3).map((m) => m.seq), [100, 200, 300]);
  });
});

describe('RoomViews', () => {
  it('creates a view only when asked to', () => {
    const views = new RoomViews();
    assert.equal(views.get('r'), undefined);
    assert.equal(views.has('r'), false, 'reading made nothing');
    const view = views.ensure('r');
    assert.equal(views.ensure('r'), view);
    assert.equal(view.moderator, false);
    views.delete('r');
    assert.equal(views.has('r'), false);
  });
});

describe('reconnectDelay', () => {
  it('doubles from one second to at most fifteen, with jitter either side', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 9].map((n) => reconnectDelay(n, 0.5)), [1000, 2000, 4000, 8000, 15000, 15000]);
    assert.equal(reconnectDelay(1, 0), 750);
    assert.equal(reconnectDelay(1, 1), 1250);
  });
});

describe('unsentFor', () => {
  it('reuses the id for the same text in the same room, and only then', () => {
    let n = 0;
    const newId = () => `id-${(n += 1)}`;
    const first = unsentFor(null, 'r', 'hello', newId);
    assert.equal(first.client_msg_id, 'id-1');
    assert.equal(unsentFor(first, 'r', 'hello', newId).client_msg_id, 'id-1', 'a retry');
    assert.equal(unsentFor(first, 'r', 'hello!', newId).client_msg_id, 'id-2', 'edited text');
    assert.equal(unsentFor(first, 'other', 'hello', newId).client_msg_id, 'id-3', 'another room');
  });
});

describe('Timeline.slice', () => {
  it('gives the newest messages, or those just before a seq, in order', () => {
    const timeline = new Timeline();
    for (const seq of [1, 2, 3, 5, 8]) timeline.add(message(seq));
    const seqs = (messages) => messages.map((m) => m.seq);
    assert.deepEqual(seqs(timeline.slice(2)), [5, 8]);
    assert.deepEqual(seqs(timeline.slice(2, 5)), [2, 3]);
    assert.deepEqual(seqs(timeline.slice(10, 4)), [1, 2, 3]);
    assert.deepEqual(seqs(timeline.slice(3, 1)), []);
  });
});
