// What the page says to people when something did not work: one plain sentence per
// error code, and the server's times in the member's own time zone.

/** Codes whose server sentence is for people (it says which room, until when, why). */
const SERVER_SAYS_IT_WELL = new Set([
  'invalid',
  'forbidden',
  'not_found',
  'conflict',
  'muted',
  'banned',
  'not_open',
  'full',
  'rate_limited',
  'too_large',
  'offline',
]);

/** The page's own words for the codes whose server sentence would not help a member. */
const OWN_WORDS = {
  bad_request: 'The page and the server did not understand each other. Reloading the page usually fixes this.',
  unauthenticated: 'Your session has ended. Please log in again.',
  internal: 'The server could not do that just now, and nothing was changed. Please try again in a moment.',
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Rewrites the server's "27 Nov 2026, 09:33 UTC" times into the reader's zone with
 * `format` (a Date → text function; the browser's locale by default).
 */
export function localiseTimes(text, format = (date) => date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })) {
  return text.replace(/(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}), (\d{2}):(\d{2}) UTC/g, (whole, day, month, year, hour, minute) => {
    const index = MONTHS.indexOf(month);
    if (index < 0) return whole;
    return format(new Date(Date.UTC(Number(year), index, Number(day), Number(hour), Number(minute))));
  });
}

/** The sentence to show for an error with `code` and the server's `message`. */
export function plainMessage(code, message, format) {
  if (OWN_WORDS[code]) return OWN_WORDS[code];
  if (SERVER_SAYS_IT_WELL.has(code) && message) return localiseTimes(message, format);
  return 'Something went wrong. Please try again.';
}
