// Unit tests of the page's words for errors: `node --test web/`.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localiseTimes, plainMessage } from './words.js';

const iso = (date) => date.toISOString();

describe('localiseTimes', () => {
  it('turns the server times into the reader’s own, and leaves the rest alone', () => {
    assert.equal(
      localiseTimes('You are muted in #circle until 27 Nov 2026, 09:33 UTC. Reason: pause', iso),
      'You are muted in #circle until 2026-11-27T09:33:00.000Z. Reason: pause',
    );
    assert.equal(localiseTimes('#summit opens at 1 Jan 2099, 09:00 UTC.', iso), '#summit opens at 2099-01-01T09:00:00.000Z.');
    assert.equal(localiseTimes('no times here', iso), 'no times here');
  });
});

describe('plainMessage', () => {
  it('uses the server’s sentence where it speaks to people, and the page’s own otherwise', () => {
    assert.equal(plainMessage('muted', 'You are muted in #circle until 1 Jan 2099, 09:00 UTC.', iso), 'You are muted in #circle until 2099-01-01T09:00:00.000Z.');
    assert.match(plainMessage('bad_request', 'Bad “send” request: missing field “body”.'), /Reloading the page/);
    assert.match(plainMessage('internal', 'Internal error'), /nothing was changed/);
    assert.equal(plainMessage('something_new', 'x'), 'Something went wrong. Please try again.');
  });
});
