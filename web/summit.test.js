// The summit banner's countdown, as members read it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countdown } from './summit.js';

test('a countdown reads in hours, minutes or seconds, never below zero', () => {
  assert.equal(countdown(45_000), '45 s');
  assert.equal(countdown(44_001), '45 s', 'a part of a second counts as a whole one still to wait');
  assert.equal(countdown(12 * 60_000 + 4_000), '12 min 04 s');
  assert.equal(countdown(2 * 3_600_000 + 5 * 60_000), '2 h 05 min');
  assert.equal(countdown(30 * 3_600_000), '30 h 00 min');
  assert.equal(countdown(3 * 86_400_000 + 4 * 3_600_000), '3 d 04 h');
  assert.equal(countdown(-5_000), '0 s');
});
