// The web client in a real headless Chromium against the real server binary.
//
// One story, step by step: a member registers; an organiser creates a summit room; the
// two chat live; the organiser mutes the member, whose page says so, and acts on a
// member who is away; markup in a message stays text; the member edits a message and
// the room sees it marked edited; members react to it and reply to it; another room
// shows what is new there and that she was named; search finds words across her rooms; drafts stay per room; addresses
// become links; new messages below are counted, not scrolled into; a reported message
// outlives its deletion for the moderators; a member who may be in crisis is offered
// support privately while the moderator is told and acknowledges; a member asks a
// moderator to look in; a hosted room waits for its host; a message with a content
// warning is folded away or hidden as the reader chose; a member blocks someone and
// sees only a note in place of their messages; support is there on the login page without an account; the
// server restarts and the page catches up
// with nothing lost or doubled; quick exit leaves no trace. Screenshots go to
// target/e2e/.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import {
  accessibilityViolations,
  launchBrowser,
  logIn,
  newPage,
  recordRequests,
  SCREENSHOTS,
  Server,
  socketClient,
  WAIT_MS,
} from './support.mjs';

const STEP = { timeout: 60_000 };

describe('the web client', () => {
  let server;
  let browser;
  const errors = [];
  let organiser; // Olivia's page
  let member; // Bea's page

  before(async () => {
    server = await Server.start();
    server.createUser('olivia', 'organiser password', 'organiser', 'Olivia');
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  /** Chooses `label` from a message's actions menu. */
  async function act(page, message, label) {
    await message.locator('.actions-button').click();
    const menu = page.locator('#action-menu');
    await menu
      .getByRole('menuitem', { name: label, exact: true })
      .or(menu.getByRole('menuitemcheckbox', { name: label, exact: true }))
      .click();
  }

  /** The labels a message's actions menu offers, closing it again with Escape. */
  async function menuOf(page, message) {
    await message.locator('.actions-button').click();
    const labels = await page.locator('#action-menu [role=menuitem]').allTextContents();
    await page.keyboard.press('Escape');
    await page.waitForSelector('#action-menu', { state: 'hidden' });
    return labels;
  }

  /** The bodies of the messages shown in a page, in order. */
  const bodies = (page) => page.locator('#messages .message .body').allTextContents();

  it('registers a new member and logs in', STEP, async () => {
    member = await newPage(browser, errors);
    await member.goto(server.url);
    await member.screenshot({ path: join(SCREENSHOTS, 'login.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: login');
    await member.fill('#register-username', 'bea');
    await member.fill('#register-display', 'Bea');
    await member.fill('#register-password', 'a gentle password');
    await member.click('#register-form button[type=submit]');
    await member.waitForSelector('#connection[data-state=connected]');
    assert.equal(await member.textContent('#whoami'), 'Signed in as Bea');
    assert.equal(await member.evaluate(() => document.activeElement.id), 'rooms-title', 'focus moves on from the hidden form');
    assert.ok(!member.url().includes('token'), 'the token is never in the URL');
    assert.equal(await member.isHidden('#create-room'), true, 'members do not see room creation');
  });

  it('lets an organiser create a summit room', STEP, async () => {
    organiser = await newPage(browser, errors);
    await logIn(organiser, server, 'olivia', 'organiser password');
    await organiser.click('#create-room summary');
    await organiser.fill('#room-name', 'wmhd-2026');
    await organiser.fill('#room-topic', 'World Mental Health Day: open conversation');
    await organiser.selectOption('#room-kind', 'summit');
    await organiser.fill('#room-starts', '2020-10-10T09:00');
    await organiser.fill('#room-ends', '2099-10-10T21:00');
    await organiser.fill('#room-capacity', '500');
    assert.match(await organiser.textContent('#summit-zone'), /your time zone, \S+/);
    const spill = await organiser.$eval('.sidebar', (bar) => bar.scrollWidth - bar.clientWidth);
    assert.ok(spill <= 0, `the summit form stays inside the sidebar (spills ${spill}px)`);
    await organiser.click('#create-room-form button[type=submit]');
    await organiser.waitForSelector('#room-title:text-is("#wmhd-2026")');
    const badge = organiser.locator('.room-button:has(.room-name:text-is("#wmhd-2026")) .badge');
    assert.match(await badge.textContent(), /^Summit · Open until /);
    assert.match(await organiser.textContent('#room-status'), /Summit: Open until/);
  });

  it('shows two people each other’s messages live', STEP, async () => {
    // Bea sees the new room in her list, with its schedule, and joins it.
    await member.reload();
    await member.waitForSelector('#connection[data-state=connected]');
    // A room not joined yet is shown first, not joined by the click: joining is a choice.
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-preview:not([hidden])');
    await member.screenshot({ path: join(SCREENSHOTS, 'room-preview.png') });
    assert.match(await member.textContent('#preview-facts'), /1 online now · Summit: Open until .* · Up to 500 members/);
    assert.match(await member.textContent('#preview-facts'), /(GMT|UTC)/, 'the summit time names its zone');
    await member.waitForTimeout(300);
    assert.equal(await organiser.locator('#member-list :text("Bea")').count(), 0, 'not a member until she chooses');
    await member.click('#preview-join');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await organiser.waitForSelector('#member-list :text("Bea")');

    await organiser.fill('#message-input', 'Welcome, everyone. Take your time.');
    await organiser.press('#message-input', 'Enter');
    await member.waitForSelector('#messages .body:text-is("Welcome, everyone. Take your time.")');
    // New messages from others are announced to screen readers.
    await member.waitForFunction(() => document.querySelector('#announcer').textContent.includes('Welcome, everyone'));

    await member.fill('#message-input', 'Thank you for having me.');
    await member.click('#composer button[type=submit]');
    await organiser.waitForSelector('#messages .body:text-is("Thank you for having me.")');
    assert.deepEqual(await bodies(organiser), ['Welcome, everyone. Take your time.', 'Thank you for having me.']);
    assert.deepEqual(await bodies(member), await bodies(organiser));
    await organiser.screenshot({ path: join(SCREENSHOTS, 'room-view.png') });
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: room');
  });

  it('renders markup in a message as plain text', STEP, async () => {
    const hostile = '<script>window.pwned = true</script><img src=x onerror="window.pwned=true"><b>bold?</b>';
    await member.fill('#message-input', hostile);
    await member.press('#message-input', 'Enter');
    const shown = organiser.locator('#messages .body', { hasText: 'bold?' });
    await shown.waitFor();
    assert.equal(await shown.textContent(), hostile, 'the text is shown exactly as typed');
    assert.equal(await organiser.locator('#messages script, #messages img, #messages b').count(), 0);
    assert.equal(await organiser.evaluate(() => window.pwned), undefined);
  });

  it('lets a moderator mute a member, and the member sees why and until when', STEP, async () => {
    await organiser.click('#mod-tools summary');
    await organiser.click('#member-list li:has-text("Bea") button:text-is("Mute")');
    await organiser.selectOption('#mod-duration', '3600');
    await organiser.fill('#mod-reason', 'Let’s take a short pause');
    await organiser.screenshot({ path: join(SCREENSHOTS, 'mute-dialog.png') });
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: modtools');
    await organiser.click('#mod-confirm');
    await member.waitForSelector('#notice:has-text("You have been muted in #wmhd-2026 until")');
    assert.match(await member.textContent('#notice'), /Reason: Let’s take a short pause/);
    const composerNotice = member.locator('#composer-notice');
    await composerNotice.waitFor();
    assert.match(await composerNotice.textContent(), /You are muted in this room until .*Let’s take a short pause/);
    // Trying anyway is refused by the server, and the page says so.
    await member.fill('#message-input', 'Can anyone hear me?');
    await member.press('#message-input', 'Enter');
    await member.waitForSelector('#composer-notice:has-text("muted")');
    assert.ok(!(await bodies(organiser)).includes('Can anyone hear me?'));
    // The moderation log records it.
    await organiser.click('#show-log');
    await organiser.waitForSelector('#log-panel li:has-text("olivia muted bea")');
    await organiser.click('#member-list li:has-text("Bea") button:text-is("Unmute")');
    await member.waitForSelector('#notice:has-text("You can post in #wmhd-2026 again")');
  });

  it('lists members who are away too, and lets a moderator act on them', STEP, async () => {
    server.createUser('sam', 'a quiet password', 'member', 'Sam');
    const sam = await socketClient(server, await server.token('sam', 'a quiet password'));
    await sam.request('join', { room: 'wmhd-2026' });
    sam.close();
    // Once Sam's socket is gone (after the presence grace), he is listed as away.
    const entry = organiser.locator('#member-list li.away', { hasText: 'Sam' });
    await entry.waitFor();
    await entry.locator('button:text-is("Mute")').click();
    await organiser.click('#mod-confirm');
    await organiser.locator('#member-list li', { hasText: 'Sam' }).locator('.muted-mark').waitFor();
    await organiser.locator('#member-list li', { hasText: 'Sam' }).locator('button:text-is("Unmute")').click();
    await organiser.locator('#member-list li', { hasText: 'Sam' }).locator('button:text-is("Mute")').waitFor();
    // Nobody is offered actions on themselves or on the room's owner.
    assert.equal(await organiser.locator('#member-list li', { hasText: 'Olivia' }).locator('.member-actions button').count(), 0);
  });

  it('lets an author edit a message, and the room sees the new words marked edited', STEP, async () => {
    const typo = 'I am feeling a bit beter today.';
    await member.fill('#message-input', typo);
    await member.press('#message-input', 'Enter');
    const mine = member.locator('#messages .message', { hasText: typo });
    await mine.waitFor();
    const seq = await mine.getAttribute('data-seq');
    // Only the author is offered the edit.
    const theirs = organiser.locator(`#messages .message[data-seq="${seq}"]`);
    await theirs.waitFor();
    assert.ok(!(await menuOf(organiser, theirs)).includes('Edit'));
    await act(member, mine, 'Edit');
    assert.equal(await member.inputValue('#edit-body'), typo);
    await member.fill('#edit-body', 'I am feeling a bit better today.');
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: a dialog');
    await member.click('#edit-dialog button[value=confirm]');
    await organiser.waitForSelector(`#messages .message[data-seq="${seq}"] .edited`);
    assert.equal(await theirs.locator('.body').textContent(), 'I am feeling a bit better today.');
    await member.waitForSelector(`#messages .message[data-seq="${seq}"] .edited`);
  });

  it('lets members react, counting each member once, and take a reaction back', STEP, async () => {
    const words = 'I am feeling a bit better today.';
    const theirs = organiser.locator('#messages .message', { hasText: words });
    const mine = member.locator('#messages .message', { hasText: words });
    // Nothing drawn until someone reacts: the first reaction comes from the menu.
    assert.equal(await theirs.locator('button.reaction').count(), 0);
    await act(organiser, theirs, 'React 💙');
    await mine.locator('button.reaction:text-is("💙 1")').waitFor();
    await mine.locator('button.reaction:text-is("💙 1")').click();
    await theirs.locator('button.reaction:text-is("💙 2")').waitFor();
    // Pressed once her own request is answered (the count may arrive just before).
    await mine.locator('button.reaction[aria-pressed="true"]:text-is("💙 2")').waitFor();
    await mine.locator('button.reaction:text-is("💙 2")').click();
    await theirs.locator('button.reaction:text-is("💙 1")').waitFor();
    // Her own reaction stays shown as hers after a reload (the server says which).
    await organiser.reload();
    await organiser.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await theirs.locator('button.reaction[aria-pressed="true"]:text-is("💙 1")').waitFor();
    // The menu's reaction row says which are hers, too.
    await theirs.locator('.actions-button').click();
    const heart = organiser.locator('#action-menu').getByRole('menuitemcheckbox', { name: 'React 💙', exact: true });
    assert.equal(await heart.getAttribute('aria-checked'), 'true');
    await organiser.keyboard.press('Escape');
    await organiser.waitForSelector('#action-menu', { state: 'hidden' });
  });

  it('lets a member reply, quoting the message answered', STEP, async () => {
    const words = 'I am feeling a bit better today.';
    await act(organiser, organiser.locator('#messages .message', { hasText: words }), 'Reply');
    await organiser.waitForSelector('#replying:has-text("Replying to Bea")');
    await organiser.fill('#message-input', 'So glad to hear it.');
    await organiser.press('#message-input', 'Enter');
    const reply = member.locator('#messages .message', { hasText: 'So glad to hear it.' });
    await reply.waitFor();
    assert.equal(await reply.locator('blockquote.quote').textContent(), `Bea: ${words}`);
    await organiser.waitForSelector('#replying', { state: 'hidden' });
    await member.screenshot({ path: join(SCREENSHOTS, 'reply-and-reactions.png') });
  });

  it('shows what is new in another room, and that someone named the member there', STEP, async () => {
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    await olivia.request('create_room', { name: 'tea-break', topic: 'Off-topic chat' });
    await member.reload();
    await member.waitForSelector('#connection[data-state=connected]');
    await member.click('.room-button:has-text("#tea-break")');
    await member.click('#preview-join');
    await member.waitForSelector('#room-title:text-is("#tea-break")');
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await olivia.request('send', { room: 'tea-break', body: 'Kettle is on.' });
    await olivia.request('send', { room: 'tea-break', body: '@bea are you around for a cuppa?' });
    olivia.close();
    const tea = member.locator('.room-button:has-text("#tea-break")');
    await tea.locator('.badge.new:text-is("2 new")').waitFor();
    await tea.locator('.badge.mention:text-is("@1")').waitFor();
    await member.screenshot({ path: join(SCREENSHOTS, 'unread-and-mentions.png') });
    // Opening the room reads it: the badges go, and the message naming her stands out.
    await tea.click();
    await member.waitForSelector('#messages .message.names-me:has-text("are you around")');
    // The room opens where she stopped reading: a "New messages" line above the first.
    const firstNew = member.locator('#messages .message.first-unread');
    assert.equal(await firstNew.count(), 1);
    assert.match(await firstNew.locator('.body').textContent(), /Kettle is on\./);
    const line = await firstNew.evaluate((li) => getComputedStyle(li, '::before').content);
    assert.match(line, /New messages/);
    // The first message of a day says which day it is.
    const day = await member.locator('#messages .message').first().evaluate((li) => getComputedStyle(li, '::before').content);
    assert.match(day, new RegExp(String(new Date().getFullYear())));
    await tea.locator('.badge').first().waitFor({ state: 'detached' });
    // The page told the server (a second later, at most one marker a second): her other
    // devices see nothing new there either.
    const bea = await socketClient(server, await server.token('bea', 'a gentle password'));
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const { rooms } = await bea.request('rooms', {});
      const room = rooms.find((r) => r.name === 'tea-break');
      if (room.unread === 0 && room.mentions_unread === 0) break;
      assert.ok(Date.now() < deadline, `still unread on the server: ${JSON.stringify(room)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    bea.close();
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
  });

  it('runs a summit from lobby to stage to Q&A to hallway, with a question taken and answered', STEP, async () => {
    await organiser.locator('.room-button:has(.room-name:text-is("#wmhd-2026"))').click();
    await organiser.waitForSelector('#room-title:text-is("#wmhd-2026")');
    if (!(await organiser.locator('#mod-tools').evaluate((tools) => tools.open))) await organiser.click('#mod-tools summary');
    const move = async (phase) => {
      await organiser.selectOption('#phase-select', phase);
      await organiser.click('#phase-form button[type=submit]');
    };
    await move('lobby');
    await member.waitForSelector('#composer-notice:has-text("The lobby: the hosts post announcements")');
    await move('stage');
    await member.waitForSelector('#composer-notice:has-text("The speakers have the floor")');
    assert.equal(await member.textContent('#phase-banner'), 'On stage', 'the banner names the phase');
    // Sam speaks: his words stand out from the audience's.
    const speaker = await socketClient(server, await server.token('sam', 'a quiet password'));
    await speaker.request('join', { room: 'wmhd-2026' });
    const host = await socketClient(server, await server.token('olivia', 'organiser password'));
    await host.request('set_room_role', { room: 'wmhd-2026', user: 'sam', role: 'speaker' });
    host.close();
    await speaker.request('send', { room: 'wmhd-2026', body: 'Thank you for having me on stage.' });
    speaker.close();
    const spoken = member.locator('#messages .message.from-speaker', { hasText: 'Thank you for having me on stage.' });
    await spoken.waitFor();
    assert.equal(await spoken.locator('.role-speaker').textContent(), 'speaker');
    await member.locator('#qa-panel').waitFor();
    assert.equal(await member.isHidden('#composer'), true, 'the audience asks instead of posting');
    assert.equal(await organiser.isHidden('#composer'), false, 'the organiser hosts: their composer stays');
    assert.equal(await organiser.isHidden('#composer-notice'), true);
    // Bea asks without her name; the moderators see who asked, the room does not.
    await member.fill('#ask-input', 'How do we look after ourselves while supporting others?');
    await member.check('#ask-anonymous');
    await member.click('#ask-form button[type=submit]');
    await member.waitForSelector('#ask-status:has-text("with the moderators")');
    const pending = organiser.locator('#question-list .question.pending', { hasText: 'look after ourselves' });
    await pending.waitFor();
    assert.match(await pending.locator('.question-meta').textContent(), /Bea \(asked without their name\)/);
    await pending.locator('button:text-is("Take it")').click();
    const taken = member.locator('#question-list .question.approved', { hasText: 'look after ourselves' });
    await taken.waitFor();
    assert.match(await taken.locator('.question-meta').textContent(), /^Someone/);
    await move('qa');
    // Sam votes for it from elsewhere; the count reaches Bea's page.
    const sam = await socketClient(server, await server.token('sam', 'a quiet password'));
    const { questions } = await sam.request('questions', { room: 'wmhd-2026' });
    await sam.request('upvote', { room: 'wmhd-2026', question_id: questions[0].id });
    sam.close();
    await taken.locator('button.vote:text-is("Vote · 1")').waitFor();
    await member.screenshot({ path: join(SCREENSHOTS, 'summit-questions.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: the questions panel');
    await taken.locator('button.vote').click();
    await taken.locator('button.vote[aria-pressed=true]:text-is("Voted · 2")').waitFor();
    await organiser.locator('#question-list .question.approved button:text-is("Mark answered")').click();
    await member.locator('#question-list .question.answered', { hasText: 'look after ourselves' }).waitFor();
    await move('hallway');
    await member.waitForSelector('#qa-panel', { state: 'hidden' });
    await member.waitForSelector('#composer-notice', { state: 'hidden' });
    assert.equal(await member.isHidden('#composer'), false, 'the hallway is open to everyone');
  });

  it('shows the imported programme in the reader’s own time zone, with a countdown and “add to calendar”', STEP, async () => {
    // A session given at 09:00 London time (summer time: 08:00 UTC), read in Tokyo (17:00).
    const said = server.importProgramme([
      'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//e2e//EN',
      'BEGIN:VEVENT', 'UID:listening@e2e', 'DTSTART;TZID=Europe/London:20301010T090000',
      'DTEND;TZID=Europe/London:20301010T100000', 'SUMMARY:Listening well', 'X-ALONGSIDE-ROOM:listening-well',
      'END:VEVENT', 'END:VCALENDAR', '',
    ].join('\r\n'), 'olivia');
    assert.match(said, /opened 1 summit room/);
    const tokyo = await newPage(browser, errors, { timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
    await logIn(tokyo, server, 'bea', 'a gentle password');
    await tokyo.click('#programme summary');
    // Drawn when opened (the panel does not redraw while closed).
    await tokyo.waitForSelector('#programme-zone:not(:empty)');
    assert.equal(await tokyo.textContent('#programme-zone'), 'Times are in your time zone, Asia/Tokyo.');
    const item = tokyo.locator('#programme-list li[data-room="listening-well"]');
    await item.waitFor();
    const text = await item.textContent();
    assert.match(text, /10 Oct 2030, 17:00 GMT\+9 to 18:00/, `in Tokyo's time: ${text}`);
    assert.match(text, /09:00 in Europe\/London/, `and as it was given: ${text}`);
    assert.match(text, /Not begun/);
    const href = await item.locator('a:text-is("Add to calendar")').getAttribute('href');
    const ics = await (await fetch(new URL(href, server.url), { signal: AbortSignal.timeout(10_000) })).text();
    assert.equal(ics.match(/BEGIN:VEVENT/g).length, 1, 'one session, not the whole programme');
    assert.match(ics, /DTSTART:20301010T080000Z/);
    const badge = tokyo.locator('.room-button:has(.room-name:text-is("#listening-well")) .badge');
    assert.equal(await badge.textContent(), 'Summit · Opens 10 Oct 2030, 16:45 GMT+9', 'the lobby opens 15 minutes before');
    await item.scrollIntoViewIfNeeded();
    await tokyo.screenshot({ path: join(SCREENSHOTS, 'programme.png') });
    assert.deepEqual(await accessibilityViolations(tokyo), [], 'WCAG 2.2 AA: the programme');
    // In the room: the phase, and how long until the lobby opens.
    await tokyo.click('.room-button:has(.room-name:text-is("#listening-well"))');
    await tokyo.click('#preview-join');
    await tokyo.waitForSelector('#room-title:text-is("#listening-well")');
    assert.match(await tokyo.textContent('#phase-banner'), /^Not begun · Lobby in \d+ d \d\d h$/);
    await tokyo.context().close();
  });

  it('finds words across her rooms, and opens the room of a result', STEP, async () => {
    await member.fill('#search-input', 'CUPPA');
    await member.press('#search-input', 'Enter');
    const hit = member.locator('#search-results .search-hit');
    await hit.first().waitFor();
    assert.equal(await hit.count(), 1);
    assert.match(await hit.textContent(), /#tea-break · Olivia .*are you around for a cuppa\?/);
    await member.screenshot({ path: join(SCREENSHOTS, 'search.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: replies, reactions, badges, search');
    await hit.click();
    await member.waitForSelector('#room-title:text-is("#tea-break")');
    await member.click('#search-results button:text-is("Close results")');
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
  });

  it('opens a 3,000-message room from its latest messages, and keeps the page small', { timeout: 180_000 }, async () => {
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    await olivia.request('create_room', { name: 'archive', topic: 'Three years of peer support' });
    // In batches, so each reply's own timeout measures one batch, not all 3,000.
    for (let batch = 0; batch < 3000; batch += 250) {
      const sends = [];
      for (let n = batch + 1; n <= batch + 250; n++) sends.push(olivia.request('send', { room: 'archive', body: `Archive ${n}` }));
      await Promise.all(sends);
    }
    olivia.close();
    await member.reload();
    await member.waitForSelector('#connection[data-state=connected]');
    await recordRequests(member);
    const requests = async (type) => {
      const sent = await member.evaluate(() => window.sentTypes.splice(0));
      return sent.filter((t) => t === type).length;
    };
    await member.click('.room-button:has-text("#archive")');
    await member.click('#preview-join');
    await member.waitForSelector('#messages .body:text-is("Archive 3000")');
    assert.equal(await requests('history'), 0, 'the join reply is enough: no history downloaded');
    const drawn = () => member.locator('#messages .message').count();
    assert.ok((await drawn()) <= 200, `at most 200 messages drawn, not ${await drawn()}`);
    // Switching away and back: the main-thread time is printed, the work is asserted.
    await member.$eval('#messages .message:last-child', (li) => { li.drawnBefore = true; });
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    const started = await member.evaluate(() => performance.now());
    await member.click('.room-button:has-text("#archive")');
    await member.waitForSelector('#room-title:text-is("#archive")');
    const switchMs = (await member.evaluate(() => performance.now())) - started;
    // The page's own main-thread work, measured by the page with the Performance API.
    const workMs = await member.evaluate(() => performance.getEntriesByName('alongside:room-switch').at(-1).duration);
    console.log(`room switch back to 3,000 messages: ${workMs.toFixed(1)} ms of page work; ${switchMs.toFixed(1)} ms click to drawn, join round trip included`);
    assert.equal(await requests('history'), 0);
    assert.ok((await drawn()) <= 200);
    assert.ok(await member.$eval('#messages .message:last-child', (li) => li.drawnBefore === true), 'elements are reused, not drawn again');
    // A busy room read at the bottom: the oldest drawn messages make way for new ones.
    const olivia2 = await socketClient(server, await server.token('olivia', 'organiser password'));
    for (let n = 1; n <= 250; n++) await olivia2.request('send', { room: 'archive', body: `Live ${n}` });
    // A reply to a message the page does not hold yet.
    await olivia2.request('send', { room: 'archive', body: 'Answering an old one', reply_to: 2930 });
    olivia2.close();
    const answer = member.locator('#messages .message', { hasText: 'Answering an old one' });
    await answer.waitFor();
    assert.equal(await answer.locator('blockquote.quote').textContent(), 'Replying to an earlier message');
    assert.ok((await drawn()) <= 200, `the page keeps at most 200 drawn, not ${await drawn()}`);
    assert.equal(await member.isVisible('#load-earlier'), true);
    // "Load earlier" first draws again what the page made way for, without asking;
    // once those are drawn, it asks for one page and draws it above.
    let history = 0;
    for (let click = 0; click < 10 && history === 0; click++) {
      const before = await drawn();
      await member.click('#load-earlier');
      await member.waitForFunction((n) => document.querySelectorAll('#messages .message').length > n, before);
      history = await requests('history');
      assert.ok(click > 0 || history === 0, 'the messages it made way for come back without a request');
    }
    assert.equal(history, 1);
    // The page now holds the message it answers: the quote says what it was.
    await answer.locator('blockquote.quote:text-is("Olivia: Archive 2930")').waitFor();
    const seqs = await member.locator('#messages .message').evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'in order, no holes');
    assert.equal(seqs.at(-1), 3251);
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
  });

  it('lists a big room’s members a page at a time', { timeout: 180_000 }, async () => {
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    await olivia.request('create_room', { name: 'big-circle', topic: 'Everyone' });
    olivia.close();
    const names = Array.from({ length: 205 }, (_, n) => `peer${String(n).padStart(3, '0')}`);
    // A few at a time: each registration and login hashes a password.
    for (let at = 0; at < names.length; at += 8) {
      await Promise.all(
        names.slice(at, at + 8).map(async (name) => {
          const response = await fetch(`${server.url}/api/v1/register`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ username: name, password: 'a peer password' }),
            signal: AbortSignal.timeout(WAIT_MS),
          });
          assert.equal(response.status, 201, `register ${name}`);
          const peer = await socketClient(server, await server.token(name, 'a peer password'));
          await peer.request('join', { room: 'big-circle' });
          peer.close();
        }),
      );
    }
    // The room list learnt of the new room as it was made, without a reload.
    await organiser.click('.room-button:has-text("#big-circle")');
    await organiser.waitForSelector('#room-title:text-is("#big-circle")');
    const listed = () => organiser.locator('#member-list li .who').count();
    await organiser.waitForSelector('#member-list button:text-is("Show more members")');
    assert.equal(await listed(), 200);
    await organiser.click('#member-list button:text-is("Show more members")');
    await organiser.waitForFunction(() => document.querySelectorAll('#member-list li .who').length === 206);
    assert.equal(await organiser.locator('#member-list button:text-is("Show more members")').count(), 0);
    await organiser.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await organiser.waitForSelector('#room-title:text-is("#wmhd-2026")');
  });

  it('keeps a draft per room, across a reload', STEP, async () => {
    await member.fill('#message-input', 'A thought for the summit, not yet sent');
    await member.click('.room-button:has-text("#tea-break")');
    await member.waitForSelector('#room-title:text-is("#tea-break")');
    assert.equal(await member.inputValue('#message-input'), '', 'the other room has its own composer');
    await member.fill('#message-input', 'Tea thoughts');
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    assert.equal(await member.inputValue('#message-input'), 'A thought for the summit, not yet sent');
    await member.reload();
    await member.waitForSelector('#connection[data-state=connected]');
    await member.click('.room-button:has-text("#tea-break")');
    await member.waitForSelector('#room-title:text-is("#tea-break")');
    assert.equal(await member.inputValue('#message-input'), 'Tea thoughts');
    await member.fill('#message-input', '');
    await member.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await member.fill('#message-input', '');
  });

  it('reopens the room after a reload, warns instead of cutting a long paste, and types quietly', STEP, async () => {
    await member.reload();
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await recordRequests(member);
    await member.focus('#message-input');
    await member.keyboard.press('Tab');
    await member.focus('#message-input');
    await member.keyboard.press('ArrowLeft');
    const long = 'a'.repeat(4500);
    await member.fill('#message-input', long);
    await member.waitForSelector('#too-long:has-text("4,500 characters")');
    await member.press('#message-input', 'Enter');
    assert.equal((await member.inputValue('#message-input')).length, 4500, 'nothing was cut');
    const sent = await member.evaluate(() => window.sentTypes);
    assert.ok(!sent.includes('send'), `nothing sent: ${sent}`);
    assert.ok(!sent.includes('typing'), `Tab and arrows are not typing: ${sent}`);
    await member.fill('#message-input', '');
    await member.waitForSelector('#too-long', { state: 'hidden' });
  });

  it('tells a member banned from the network why and until when, in her own time zone', STEP, async () => {
    server.createUser('tom', 'a plain password', 'member', 'Tom');
    const tom = await newPage(browser, errors);
    await logIn(tom, server, 'tom', 'a plain password');
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    await olivia.request('ban', { scope: 'server', user: 'tom', duration_s: 3600, reason: 'Spam links' });
    olivia.close();
    await tom.waitForSelector('#auth-view:not([hidden])');
    const notice = await tom.textContent('#notice');
    assert.match(notice, /You have been banned from this network until .*Reason: Spam links/);
    // Logging in again is refused in plain words, with a local time (no "UTC", no backticks).
    await tom.fill('#login-username', 'tom');
    await tom.fill('#login-password', 'a plain password');
    await tom.click('#login-form button[type=submit]');
    await tom.waitForFunction(() => /banned/i.test(document.querySelector('#notice')?.textContent || '') && !document.querySelector('#notice').textContent.includes('You have been banned from this network'));
    const refusal = await tom.textContent('#notice');
    assert.ok(!refusal.includes('`') && !refusal.includes('UTC'), refusal);
    await tom.context().close();
  });

  it('makes web addresses links, and nothing else', STEP, async () => {
    const words = 'Helplines: https://example.org/help?lang=en. Not this: javascript:alert(1)';
    await organiser.fill('#message-input', words);
    await organiser.press('#message-input', 'Enter');
    const message = member.locator('#messages .message', { hasText: 'Helplines' });
    await message.waitFor();
    const links = message.locator('.body a');
    assert.equal(await links.count(), 1);
    assert.equal(await links.getAttribute('href'), 'https://example.org/help?lang=en');
    assert.equal(await links.getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await message.locator('.body').textContent(), words, 'the text reads as typed');
    assert.match(await message.locator('time').getAttribute('title'), /2026|20\d\d/, 'full date on hover');
  });

  it('tells a member reading further up how many new messages came, and takes her there', STEP, async () => {
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    // Enough messages that the list scrolls, then Bea reads from the top.
    for (let n = 1; n <= 12; n++) await olivia.request('send', { room: 'wmhd-2026', body: `Agenda item ${n}` });
    await member.waitForSelector('#messages .body:text-is("Agenda item 12")');
    assert.ok(await member.$eval('#messages', (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 80), 'stuck to the bottom');
    await member.$eval('#messages', (list) => { list.scrollTop = 0; });
    await member.waitForSelector('#new-below:text-is("Jump to latest ↓")');
    for (const n of [1, 2, 3]) await olivia.request('send', { room: 'wmhd-2026', body: `Late addition ${n}` });
    olivia.close();
    await member.waitForSelector('#new-below:text-is("3 new messages ↓")');
    assert.equal(await member.$eval('#messages', (list) => list.scrollTop), 0, 'her place is kept');
    await member.click('#new-below');
    await member.waitForSelector('#new-below', { state: 'hidden' });
    assert.ok(await member.$eval('#messages', (list) => list.scrollHeight - list.scrollTop - list.clientHeight < 80));
  });

  it('keeps a reported message for the moderators after its author deletes it', STEP, async () => {
    const words = 'Something I wish I had not said.';
    await member.fill('#message-input', words);
    await member.press('#message-input', 'Enter');
    const reported = organiser.locator('#messages .message', { hasText: words });
    await reported.waitFor();
    const seq = await reported.getAttribute('data-seq');
    await act(organiser, reported, 'Report');
    await organiser.fill('#report-reason', 'Could hurt someone reading');
    await organiser.click('#report-dialog button[value=confirm]');
    await organiser.waitForSelector('#notice:has-text("The moderators have your report")');
    // A moderator's own room counts new reports on the button, instead of a notice the
    // next one would overwrite.
    await organiser.waitForSelector('#mod-tools summary:has-text("1 new report")');
    if (!(await organiser.locator('#mod-tools').evaluate((tools) => tools.open))) await organiser.click('#mod-tools summary');
    await organiser.waitForSelector('#show-reports:text-is("Open reports (1 new)")');
    // The author takes it back: gone for the room.
    await act(member, member.locator('#messages .message', { hasText: words }), 'Delete');
    await member.click('#confirm-yes');
    await organiser.waitForSelector(`#messages .message[data-seq="${seq}"] .body.deleted`);
    // The moderators still read what was reported, and that it was deleted since.
    await organiser.click('#show-reports');
    const entry = organiser.locator('#reports-panel li', { hasText: 'Could hurt someone reading' });
    await entry.waitFor();
    assert.equal(await entry.locator('blockquote .author').textContent(), 'Bea');
    assert.equal(await entry.locator('blockquote .handle').textContent(), '@bea');
    assert.equal(await entry.locator('blockquote .quoted').textContent(), words);
    assert.match(await entry.textContent(), /deleted since/);
    await organiser.screenshot({ path: join(SCREENSHOTS, 'reports.png') });
    // From the report: to the message itself, and to the author.
    await entry.locator('button:text-is("Go to the message")').click();
    await organiser.waitForSelector(`#messages .message[data-seq="${seq}"].sought`);
    assert.equal(await organiser.evaluate(() => document.activeElement.dataset.seq), seq);
    assert.equal(await entry.locator('button:text-is("Mute Bea")').count(), 1, 'acting on the author is offered');
    // Resolved in the page's own dialog, with a note for the log.
    await entry.locator('button:text-is("Resolve…")').click();
    await organiser.waitForSelector('#resolve-dialog[open]');
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: resolving a report');
    await organiser.fill('#resolve-note', 'Talked it through with Bea');
    await organiser.click('#resolve-dialog button[value=confirm]');
    await organiser.waitForSelector('#reports-panel p:text-is("No open reports.")');
    await organiser.click('#show-log');
    await organiser.waitForSelector('#log-panel li:has-text("olivia resolved a report — Talked it through with Bea")');
  });

  it('lets a moderator act from a message, see who is banned or muted until when, and lift it', STEP, async () => {
    const message = organiser.locator('#messages .message:has(> .body:text-is("I am feeling a bit better today."))');
    // Only what can succeed: nothing against herself; against Bea, the full set.
    const mineMenu = await menuOf(organiser, organiser.locator('#messages .message', { hasText: 'So glad to hear it.' }));
    assert.ok(!mineMenu.some((label) => /Mute|Ban|Remove/.test(label)), mineMenu.join(', '));
    assert.ok(!mineMenu.includes('Report'), 'nobody reports themselves');
    const theirs = await menuOf(organiser, message);
    for (const label of ['Reply', 'Report', 'Delete', 'Mute Bea', 'Remove Bea from the room', 'Ban Bea from the room']) {
      assert.ok(theirs.includes(label), `${label} in ${theirs.join(', ')}`);
    }
    // Bea's menu on the organiser's message offers no moderation at all.
    const beaMenu = await menuOf(member, member.locator('#messages .message', { hasText: 'So glad to hear it.' }));
    assert.ok(!beaMenu.some((label) => /Mute|Ban|Remove|Delete/.test(label)), beaMenu.join(', '));
    // A day-long mute; the next dialog starts again from one hour, not from the last choice.
    await act(organiser, message, 'Mute Bea');
    await organiser.selectOption('#mod-duration', '86400');
    await organiser.fill('#mod-reason', 'Time to rest');
    assert.equal(await organiser.textContent('#mod-confirm'), 'Mute');
    await organiser.click('#mod-confirm');
    await act(organiser, message, 'Ban Bea from the room');
    assert.equal(await organiser.inputValue('#mod-duration'), '3600', 'durations do not carry over');
    assert.equal(await organiser.inputValue('#mod-reason'), '');
    await organiser.click('#mod-dialog button[value=cancel]');
    // The tools list what is in force, with its end, and lift it in one press.
    const tools = organiser.locator('#mod-tools');
    if (!(await tools.evaluate((details) => details.open))) await organiser.click('#mod-tools summary');
    const entry = organiser.locator('#sanctions-list li', { hasText: '@bea' });
    await entry.waitFor();
    assert.match(await entry.textContent(), /Bea@bea muted until .+ \(by olivia\): Time to rest/);
    await organiser.click('#show-log');
    await organiser.evaluate(() => window.scrollTo(0, 0));
    await organiser.screenshot({ path: join(SCREENSHOTS, 'moderator-tools.png') });
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: moderator tools, light');
    await organiser.emulateMedia({ colorScheme: 'dark' });
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: moderator tools, dark');
    await organiser.emulateMedia({ colorScheme: 'light' });
    await entry.locator('button:text-is("Unmute Bea")').click();
    await organiser.waitForSelector('#sanctions-list li:text-is("Nobody is banned or muted here.")');
    await member.waitForSelector('#notice:has-text("You can post in #wmhd-2026 again")');
    // Deleting asks first, in the page's own words.
    await act(organiser, message, 'Delete');
    await organiser.waitForSelector('#confirm-dialog[open]');
    assert.match(await organiser.textContent('#confirm-text'), /Bea’s message goes for everyone/);
    await organiser.click('#confirm-dialog button[value=cancel]');
    assert.equal(await message.locator('.body.deleted').count(), 0, 'cancel deletes nothing');
  });

  it('shows who someone is on a click: the username nobody else can take, and real role badges', STEP, async () => {
    // Someone takes the organiser's name, and the word "organiser" with it.
    server.createUser('mallory', 'a sly password', 'member', 'Olivia organiser');
    const mallory = await socketClient(server, await server.token('mallory', 'a sly password'));
    await mallory.request('join', { room: 'wmhd-2026' });
    await mallory.request('send', { room: 'wmhd-2026', body: 'Please send me your password.' });
    const fake = member.locator('#messages .message', { hasText: 'Please send me your password.' });
    await fake.waitFor();
    assert.equal(await fake.locator('.handle').textContent(), '@mallory');
    assert.equal(await fake.locator('.role').count(), 0, 'no badge: a name is only text');
    const real = member.locator('#messages .message', { hasText: 'So glad to hear it.' });
    assert.equal(await real.locator('.role.role-organiser').textContent(), 'organiser');
    await real.locator('button.who').click();
    await member.waitForSelector('#profile-dialog[open]');
    assert.equal(await member.textContent('#profile-name'), 'Olivia');
    assert.match(await member.textContent('#profile-body'), /@olivia\s*organiser/);
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: a profile card');
    await member.screenshot({ path: join(SCREENSHOTS, 'profile-card.png') });
    await member.click('#profile-dialog button:text-is("Mention @olivia")');
    await member.waitForSelector('#profile-dialog', { state: 'hidden' });
    assert.equal(await member.inputValue('#message-input'), '@olivia ');
    await member.fill('#message-input', '');
    mallory.close();
  });

  it('is one tab stop per message list, with arrow keys, a menu, and short announcements', STEP, async () => {
    const list = member.locator('#messages');
    assert.equal(await list.locator('li[tabindex="0"]').count(), 1, 'one message in the tab order');
    assert.equal(await list.locator('li[tabindex="-1"] :is(button, a)[tabindex="0"]').count(), 0, 'no buttons of other messages');
    const last = await list.locator('li.message').last().getAttribute('data-seq');
    await member.focus('#messages li[tabindex="0"]');
    await member.keyboard.press('End');
    assert.equal(await member.evaluate(() => document.activeElement.dataset.seq), last);
    await member.keyboard.press('ArrowUp');
    const above = await member.evaluate(() => document.activeElement.dataset.seq);
    assert.ok(Number(above) < Number(last), `up moves to an earlier message (${above} < ${last})`);
    assert.equal(await list.locator('li[tabindex="0"]').count(), 1);
    await member.keyboard.press('End');
    assert.equal(await member.evaluate(() => document.activeElement.dataset.seq), last);
    // Enter opens that message's actions; the arrows move in the menu; Esc closes it and
    // gives focus back, and does not count towards quick exit.
    await member.keyboard.press('Enter');
    await member.waitForSelector('#action-menu:not([hidden])');
    assert.equal(await member.evaluate(() => document.activeElement.getAttribute('role')), 'menuitem');
    await member.keyboard.press('ArrowDown');
    assert.equal(await member.evaluate(() => document.activeElement.getAttribute('role')), 'menuitem');
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: a message menu');
    await member.screenshot({ path: join(SCREENSHOTS, 'message-menu.png') });
    await member.keyboard.press('Escape');
    await member.waitForSelector('#action-menu', { state: 'hidden' });
    assert.ok(await member.evaluate(() => document.activeElement.classList.contains('actions-button')));
    await member.keyboard.press('Escape');
    await member.waitForTimeout(200);
    assert.equal(new URL(member.url()).origin, new URL(server.url).origin, 'still here');
    await member.waitForTimeout(1000);
    // A long message is announced short; a burst as one sentence.
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    await olivia.request('send', { room: 'wmhd-2026', body: `A long thought: ${'and more '.repeat(40)}` });
    await member.waitForFunction(() => document.querySelector('#announcer').textContent.startsWith('Olivia: A long thought'));
    assert.ok((await member.textContent('#announcer')).length <= 100, 'short');
    for (const n of [1, 2, 3]) await olivia.request('send', { room: 'wmhd-2026', body: `Quick one ${n}` });
    await member.waitForFunction(() => document.querySelector('#announcer').textContent === '3 new messages from Olivia.');
    olivia.close();
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: after keyboard use');
  });

  it('tells her of a mention while the tab is hidden, if she asked, naming only the room', STEP, async () => {
    await member.evaluate(() => {
      window.shown = [];
      window.Notification = class {
        static permission = 'default';
        static requestPermission() {
          this.permission = 'granted';
          return Promise.resolve('granted');
        }
        constructor(title, options) {
          window.shown.push({ title, ...options });
        }
      };
    });
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    const hide = (hidden) =>
      member.evaluate((hidden) => Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') }), hidden);
    // Off by default: nothing is shown.
    await hide(true);
    await olivia.request('send', { room: 'wmhd-2026', body: '@bea first' });
    await member.waitForSelector('#messages .body:text-is("@bea first")');
    assert.deepEqual(await member.evaluate(() => window.shown), []);
    await hide(false);
    await member.check('#notify-mentions');
    await hide(true);
    await olivia.request('send', { room: 'wmhd-2026', body: '@bea something private' });
    await member.waitForFunction(() => window.shown.length === 1);
    const [shown] = await member.evaluate(() => window.shown);
    assert.equal(shown.body, 'You were mentioned in #wmhd-2026.');
    await hide(false);
    olivia.close();
  });

  it('gives a member who may be in crisis support privately, and tells the moderator, who acknowledges', STEP, async () => {
    const words = "honestly I don't want to be here anymore";
    await member.fill('#message-input', words);
    await member.press('#message-input', 'Enter');
    // The room sees the message exactly as written.
    await organiser.waitForSelector(`#messages .body:text-is("${words}")`);
    // Only Bea gets the support card.
    await member.waitForSelector('#support-dialog[open]');
    assert.match(await member.textContent('#support-intro'), /reached the room as you wrote it/);
    assert.ok((await member.locator('#support-list .resource').count()) > 0, 'support lines are listed');
    await member.screenshot({ path: join(SCREENSHOTS, 'support-card.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: support card');
    assert.equal(await organiser.locator('#support-dialog[open]').count(), 0, 'nobody else is shown it');
    await member.click('#support-dialog button[value=close]');
    // Olivia moderates the room: she is told, and says she is looking after it.
    await organiser.waitForFunction(() => document.querySelector('#notice').textContent.includes('Care alert'));
    if (!(await organiser.evaluate(() => document.querySelector('#mod-tools').open))) await organiser.click('#mod-tools summary');
    await organiser.click('#show-care');
    await organiser.waitForSelector('#care-panel .care-alert');
    assert.match(await organiser.textContent('#care-panel .care-alert'), /Bea .*may mean they are in crisis/s);
    await organiser.screenshot({ path: join(SCREENSHOTS, 'care-alerts.png') });
    await organiser.click('#care-panel button:has-text("I am looking after this")');
    await organiser.waitForSelector('#care-panel :text("No open care alerts.")');
  });

  it('lets a member ask a moderator to look in on someone', STEP, async () => {
    const message = member.locator('#messages .message', { hasText: 'Welcome, everyone. Take your time.' });
    const labels = await menuOf(member, message);
    assert.ok(labels.includes('Refer to a moderator'), labels.join(', '));
    await act(member, message, 'Refer to a moderator');
    await member.fill('#refer-note', 'Just checking everyone is alright');
    await member.click('#refer-form button[value=confirm]');
    await member.waitForFunction(() => document.querySelector('#notice').textContent.includes('moderators have been told'));
    await organiser.waitForSelector('#care-panel .care-alert:has-text("bea asked the moderators to look in")');
  });

  it('keeps a hosted room waiting until a host is on duty', STEP, async () => {
    if (!(await organiser.evaluate(() => document.querySelector('#mod-tools').open))) await organiser.click('#mod-tools summary');
    await organiser.click('#toggle-host-rule');
    await member.waitForSelector('#composer-notice:has-text("Waiting for a host")');
    assert.match(await member.textContent('#room-status'), /Waiting for a host/);
    await organiser.click('#toggle-duty');
    await member.waitForSelector('#room-status:has-text("Hosted by Olivia")');
    await member.waitForSelector('#member-list li:has-text("Olivia") .role-host:text-is("hosting now")');
    assert.equal(await member.isHidden('#composer-notice'), true, 'members may post while a host is on duty');
    await member.fill('#message-input', 'Glad you are here tonight');
    await member.press('#message-input', 'Enter');
    await organiser.waitForSelector('#messages .body:text-is("Glad you are here tonight")');
    await organiser.screenshot({ path: join(SCREENSHOTS, 'hosted-room.png') });
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: hosting');
    // Back as it was for the rest of the story.
    await organiser.click('#toggle-duty');
    await member.waitForSelector('#room-status:has-text("Waiting for a host")');
    await organiser.click('#toggle-host-rule');
    await member.waitForFunction(() => !document.querySelector('#room-status').textContent.includes('host'));
  });

  it('folds away a message with a content warning, and hides it from a member who chose that', STEP, async () => {
    const first = 'It is a year since my brother died and I keep replaying the last call';
    await organiser.click('#cw-picker-summary');
    await organiser.check('#cw-tags input[value=grief]');
    assert.equal(await organiser.textContent('#cw-picker-summary'), 'Content warning: Grief and loss');
    await organiser.fill('#cw-note', 'anniversary');
    await organiser.fill('#message-input', first);
    await organiser.press('#message-input', 'Enter');
    // The author sees her own words, under the label; the picker starts clean again.
    await organiser.waitForSelector(`#messages .cw-whole .body:text-is("${first}")`);
    assert.equal(await organiser.textContent('#cw-picker-summary'), 'Add a content warning');
    // Bea has not chosen: folded away, and the words are not in her page at all.
    const folded = member.locator('#messages .message .cw-folded', { hasText: 'Grief and loss — anniversary' });
    await folded.waitFor();
    assert.ok(!(await member.locator('#messages').ariaSnapshot()).includes('brother'), 'the words are nowhere to be read');
    assert.ok(!(await member.content()).includes('brother'), 'nor in the page');
    await member.click('#new-below').catch(() => {});
    await folded.scrollIntoViewIfNeeded();
    await member.screenshot({ path: join(SCREENSHOTS, 'content-warning-folded.png') });
    await folded.getByRole('button', { name: 'Show message' }).click();
    await member.waitForSelector(`#messages .cw-whole .body:text-is("${first}")`);
    // She chooses to hide anything about self-harm from now on.
    await member.click('#cw-preferences summary');
    await member.waitForFunction(() => document.querySelector('#pref-self_harm').value === 'collapse');
    await member.selectOption('#pref-self_harm', 'hide');
    await member.click('#preferences-form button[type=submit]');
    await member.waitForFunction(() => document.querySelector('#notice').textContent.includes('New messages follow your choices'));
    await organiser.click('#cw-picker-summary');
    await organiser.check('#cw-tags input[value=self_harm]');
    await organiser.fill('#message-input', 'When the urge to cut comes back I hold ice until it passes');
    await organiser.press('#message-input', 'Enter');
    const stub = member.locator('#messages .hidden-message');
    await stub.waitFor();
    assert.match(await stub.textContent(), /A message about self-harm is hidden, as you chose/);
    const tree = await member.locator('body').ariaSnapshot();
    assert.ok(!tree.includes('urge') && !tree.includes('ice until'), 'hidden: no words in the accessibility tree');
    assert.ok(!(await member.content()).includes('urge to cut'), 'nor anywhere in the page');
    await member.screenshot({ path: join(SCREENSHOTS, 'content-warnings.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: content warnings');
    // A moderator puts a warning on a message afterwards; Bea's page folds it away.
    const plain = organiser.locator('#messages .message', { hasText: 'Welcome, everyone. Take your time.' });
    await act(organiser, plain, 'Add a content warning');
    await organiser.check('#set-cw-tags input[value=other]');
    await organiser.click('#set-cw-form button[value=confirm]');
    await member.waitForSelector('#messages .message .cw-folded:has-text("Something else")');
    assert.equal(await member.locator('#messages .body:text-is("Welcome, everyone. Take your time.")').count(), 0);
    // Back to the default for the rest of the story.
    await member.selectOption('#pref-self_harm', 'collapse');
    await member.click('#preferences-form button[type=submit]');
    await member.click('#cw-preferences summary');
  });

  it('lets a member block someone: their messages become a quiet note, and come back on unblocking', STEP, async () => {
    server.createUser('pest', 'pest password', 'member', 'Pest');
    const pest = await socketClient(server, await server.token('pest', 'pest password'));
    await pest.request('join', { room: 'wmhd-2026' });
    await pest.request('send', { room: 'wmhd-2026', body: 'Bea, answer me' });
    const message = member.locator('#messages .message', { hasText: 'Bea, answer me' });
    await message.waitFor();
    await act(member, message, 'Block Pest');
    await member.waitForFunction(() => document.querySelector('#notice').textContent.includes('You blocked @pest'));
    await member.waitForSelector('#messages .hidden-message:has-text("A message from someone you blocked.")');
    await pest.request('send', { room: 'wmhd-2026', body: 'Bea? Are you there?' });
    await organiser.waitForSelector('#messages .body:text-is("Bea? Are you there?")');
    await member.waitForFunction(() => document.querySelectorAll('#messages .hidden-message').length >= 2);
    const page = await member.content();
    assert.ok(!page.includes('answer me') && !page.includes('Are you there'), 'none of their words are in her page');
    // Listed where she keeps her choices, with a way back.
    if (!(await member.evaluate(() => document.querySelector('#cw-preferences').open))) await member.click('#cw-preferences summary');
    await member.waitForSelector('#blocks-list li:has-text("@pest")');
    await member.locator('#blocks-list').scrollIntoViewIfNeeded();
    await member.screenshot({ path: join(SCREENSHOTS, 'blocked.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: blocking');
    await member.click('#blocks-list li:has-text("@pest") button');
    await member.waitForSelector('#messages .body:text-is("Bea? Are you there?")');
    assert.equal(await member.isVisible('#blocks-none'), true);
    await member.click('#cw-preferences summary');
    pest.close();
  });

  it('shows her own record: the mute, why and when, never who', STEP, async () => {
    await member.click('#my-data summary');
    await member.click('#show-record');
    const first = member.locator('#record-list li').first();
    await first.waitFor();
    assert.match(await first.textContent(), /^Muted in #wmhd-2026/);
    assert.ok(!(await member.textContent('#record-list')).includes('Olivia'), 'the moderator is not named');
    // She appeals; the organiser (the only moderator here, so the appeal reaches her)
    // answers from the appeals queue, and Bea hears the answer.
    await first.locator('button:text-is("Appeal")').click();
    await member.fill('#appeal-text', 'I was quoting a song, not shouting at anyone.');
    await member.click('#appeal-dialog button[value=confirm]');
    await member.waitForSelector('#record-list li .appeal-state:has-text("the moderators have it")');
    await organiser.waitForSelector('#notice:has-text("New appeal in #wmhd-2026 from bea")');
    const tools = organiser.locator('#mod-tools');
    if (!(await tools.evaluate((details) => details.open))) await organiser.click('#mod-tools summary');
    await organiser.click('#show-appeals');
    const appeal = organiser.locator('#appeals-panel li', { hasText: 'I was quoting a song' });
    await appeal.locator('button:text-is("Answer…")').click();
    await organiser.fill('#answer-note', 'Thanks for explaining; the pause stays on the record but is over.');
    await organiser.click('#answer-dialog button[value=upheld]');
    await organiser.waitForSelector('#appeals-panel p:text-is("No open appeals.")');
    await member.waitForSelector('#notice:has-text("Your appeal in #wmhd-2026 was answered")');
    await member.waitForSelector('#record-list li .appeal-state:has-text("upheld")');
    await member.locator('#record-list').scrollIntoViewIfNeeded();
    await member.screenshot({ path: join(SCREENSHOTS, 'my-record.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: my record and appeal');
    await member.click('#my-data summary');
  });

  it('lets a member ask to join a private room by its name, and a moderator let her in', STEP, async () => {
    if (!(await organiser.evaluate(() => document.querySelector('#create-room').open))) await organiser.click('#create-room summary');
    await organiser.fill('#room-name', 'night-owls');
    await organiser.fill('#room-topic', 'For those awake at 3 a.m.');
    await organiser.check('#room-private');
    await organiser.click('#create-room-form button[type=submit]');
    await organiser.waitForSelector('#room-title:text-is("#night-owls")');
    await organiser.waitForSelector('#room-status:has-text("Private")');
    // Not listed to her: she joins by the name she was given.
    assert.equal(await member.locator('#room-list .room-name:text-is("#night-owls")').count(), 0);
    await member.fill('#join-name', 'night-owls');
    await member.click('#join-name-form button[type=submit]');
    await member.waitForSelector('#notice:has-text("your request to join is with its moderators")');
    await organiser.waitForSelector('#notice:has-text("asks to join #night-owls")');
    const tools = organiser.locator('#mod-tools');
    if (!(await tools.evaluate((details) => details.open))) await organiser.click('#mod-tools summary');
    await organiser.click('#show-join-requests');
    const request = organiser.locator('#join-requests-panel li', { hasText: '@bea' });
    await request.locator('button:text-is("Let in")').click();
    await organiser.waitForSelector('#join-requests-panel p:text-is("Nobody is waiting.")');
    await member.waitForSelector('#notice:has-text("You are now a member of #night-owls")');
    const listed = member.locator('#room-list li', { hasText: '#night-owls' });
    await listed.locator('.badge.private').waitFor();
    await listed.locator('button').click();
    await member.waitForSelector('#room-title:text-is("#night-owls")');
    await member.screenshot({ path: join(SCREENSHOTS, 'private-room.png') });
    assert.deepEqual(await accessibilityViolations(member), [], 'WCAG 2.2 AA: a private room');
    await member.locator('.room-button:has(.room-name:text-is("#wmhd-2026"))').click();
    await member.waitForSelector('#room-title:text-is("#wmhd-2026")');
    await organiser.locator('.room-button:has(.room-name:text-is("#wmhd-2026"))').click();
    await organiser.waitForSelector('#room-title:text-is("#wmhd-2026")');
  });

  it('lets an organiser make an invite code and see appeals of server bans', STEP, async () => {
    assert.equal(await member.isVisible('#network-panel'), false, 'not for members');
    await organiser.click('#network-panel summary');
    await organiser.fill('#invite-uses', '3');
    await organiser.fill('#invite-days', '7');
    await organiser.click('#invite-code-form button[type=submit]');
    // The code comes back from the server: wait for it rather than read at once.
    await organiser.waitForSelector('#invite-code-result:has-text("New code:")');
    const shown = await organiser.locator('#invite-code-result').textContent();
    assert.match(shown, /New code: [a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4} \(for 3 people, until /);
    await organiser.click('#show-server-appeals');
    await organiser.waitForSelector('#server-appeals-panel p:text-is("No open appeals.")');
    assert.deepEqual(await accessibilityViolations(organiser), [], 'WCAG 2.2 AA: invite codes');
    await organiser.click('#network-panel summary');
  });

  it('downloads her data as a JSON file with her own messages', STEP, async () => {
    await member.click('#my-data summary');
    const [download] = await Promise.all([member.waitForEvent('download'), member.click('#export-data')]);
    assert.equal(download.suggestedFilename(), 'alongside-bea.json');
    const { readFile } = await import('node:fs/promises');
    const data = JSON.parse(await readFile(await download.path(), 'utf8'));
    assert.equal(data.user.username, 'bea');
    assert.ok(data.messages.length > 0 && data.messages.every((m) => m.author.username === 'bea'), 'only her own words');
    assert.ok(data.messages.some((m) => m.body === 'Glad you are here tonight'));
    await member.click('#my-data summary');
  });

  it('reconnects after a server restart and catches up without holes or duplicates', STEP, async () => {
    const before = await bodies(member);
    await server.stop();
    await member.waitForSelector('#connection[data-state=reconnecting]');
    // Written while the connection is down: it waits, visibly, and is not lost.
    await member.fill('#message-input', 'Written while the line was down');
    await member.press('#message-input', 'Enter');
    await member.waitForSelector('#outbox li:has-text("Waiting for the connection: Written while the line was down")');
    assert.equal(await member.inputValue('#message-input'), '');
    // Stay down long enough for the page's first reconnect to fail and back off.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await server.run();
    // Someone posts while the page is still away; it must come back through history.
    const olivia = await socketClient(server, await server.token('olivia', 'organiser password'));
    for (const n of [1, 2, 3]) await olivia.request('send', { room: 'wmhd-2026', body: `While you were away ${n}` });
    olivia.close();
    await member.waitForSelector('#connection[data-state=connected]', { timeout: 30_000 });
    await member.waitForSelector('#messages .body:text-is("While you were away 3")');
    await member.waitForSelector('#messages .body:text-is("Written while the line was down")');
    await member.waitForSelector('#outbox', { state: 'hidden' });
    await organiser.waitForSelector('#connection[data-state=connected]', { timeout: 30_000 });
    await organiser.fill('#message-input', 'And we are back.');
    await organiser.press('#message-input', 'Enter');
    await member.waitForSelector('#messages .body:text-is("And we are back.")');
    const after = await bodies(member);
    assert.deepEqual(after.slice(0, before.length), before);
    // The queued message and the others' may interleave (whoever reached the server
    // first), but each is there exactly once.
    assert.deepEqual(after.slice(before.length).sort(), [
      'And we are back.',
      'While you were away 1',
      'While you were away 2',
      'While you were away 3',
      'Written while the line was down',
    ]);
    const seqs = await member.locator('#messages .message').evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'every seq once, in order, no gaps');
  });

  it('leaves at once with Escape pressed twice, clearing the session', STEP, async () => {
    await member.route('https://www.bbc.co.uk/**', (route) =>
      route.fulfill({ contentType: 'text/html', body: '<title>Weather</title><h1>Weather</h1>' }),
    );
    const token = await member.evaluate(() => sessionStorage.getItem('alongside.token'));
    assert.ok(token, 'logged in before');
    // Esc that closes a dialog does not count: closing the report dialog and pressing Esc
    // once more must not throw her out of the page.
    await act(member, member.locator('#messages .message', { hasText: 'And we are back.' }), 'Report');
    await member.waitForSelector('#report-dialog[open]');
    await member.keyboard.press('Escape');
    await member.waitForSelector('#report-dialog', { state: 'hidden' });
    await member.keyboard.press('Escape');
    await member.waitForTimeout(200);
    assert.equal(new URL(member.url()).origin, new URL(server.url).origin, 'still here');
    // That Esc was the first of a pair: the second, within a second, leaves.
    await member.keyboard.press('Escape');
    await member.waitForURL('https://www.bbc.co.uk/**', { timeout: WAIT_MS });
    await member.goto(server.url);
    assert.equal(await member.evaluate(() => sessionStorage.length), 0, 'no token left behind');
    // Revoked on the server as well, so the token is useless to anyone who finds it.
    let status = 0;
    for (let tries = 0; tries < 50 && status !== 401; tries += 1) {
      status = (await fetch(`${server.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } })).status;
      if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(status, 401, 'quick exit revoked the token');
    await member.waitForSelector('#auth-view:not([hidden])');
  });

  /** Olivia's page on a phone-sized screen in `colorScheme`, in the summit room. */
  async function phoneIn(colorScheme) {
    const page = await newPage(browser, errors, { viewport: { width: 390, height: 844 }, colorScheme, reducedMotion: 'reduce' });
    await logIn(page, server, 'olivia', 'organiser password');
    await page.click('.room-button:has(.room-name:text-is("#wmhd-2026"))');
    await page.waitForSelector('#messages .body:text-is("And we are back.")');
    return page;
  }

  it('fits a phone screen, in dark mode and in light', STEP, async () => {
    const phone = await phoneIn('dark');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
    const background = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(background, 'rgb(20, 24, 27)', 'dark mode follows the system setting');
    // Quick exit stays on screen while she reads down the page (phones have no Esc).
    await phone.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    const exit = await phone.locator('#quick-exit').boundingBox();
    assert.ok(exit && exit.y >= 0 && exit.y + exit.height <= 844, `quick exit in view: ${JSON.stringify(exit)}`);
    const header = await phone.locator('header.top').boundingBox();
    assert.ok(header.height < 80, `the sticky header takes one line, not ${header.height}px`);
    await phone.screenshot({ path: join(SCREENSHOTS, 'phone-chatting.png') });
    await phone.screenshot({ path: join(SCREENSHOTS, 'phone-dark.png'), fullPage: true });
    assert.deepEqual(await accessibilityViolations(phone), [], 'WCAG 2.2 AA: phone, dark');
    await phone.context().close();
    // And in light mode.
    const day = await phoneIn('light');
    assert.equal(await day.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(247, 246, 242)');
    assert.deepEqual(await accessibilityViolations(day), [], 'WCAG 2.2 AA: phone, light');
    await day.screenshot({ path: join(SCREENSHOTS, 'phone-light.png') });
    await day.context().close();
  });

  it('logs out, revoking and forgetting the token', STEP, async () => {
    const token = await organiser.evaluate(() => sessionStorage.getItem('alongside.token'));
    assert.ok(token, 'logged in before');
    await organiser.click('#logout');
    await organiser.waitForSelector('#auth-view:not([hidden])');
    assert.equal(await organiser.evaluate(() => sessionStorage.length), 0);
    const me = await fetch(`${server.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(me.status, 401, 'the server no longer accepts the token');
  });

  it('deletes an account when asked with the password, and logs it out', STEP, async () => {
    const leaving = await newPage(browser, errors);
    await leaving.goto(server.url);
    await leaving.fill('#register-username', 'leaving');
    await leaving.fill('#register-password', 'a leaving password');
    await leaving.click('#register-form button[type=submit]');
    await leaving.waitForSelector('#connection[data-state=connected]');
    const token = await leaving.evaluate(() => sessionStorage.getItem('alongside.token'));
    await leaving.click('#my-data summary');
    await leaving.click('#delete-account');
    assert.match(await leaving.textContent('#delete-warning'), /cannot be undone/);
    await leaving.fill('#delete-password', 'not my password');
    await leaving.click('#delete-form button[value=confirm]');
    await leaving.waitForSelector('#delete-error:not([hidden])');
    assert.match(await leaving.textContent('#delete-error'), /password is not right/);
    assert.deepEqual(await accessibilityViolations(leaving), [], 'WCAG 2.2 AA: delete account');
    await leaving.fill('#delete-password', 'a leaving password');
    await leaving.click('#delete-form button[value=confirm]');
    await leaving.waitForSelector('#auth-view:not([hidden])');
    assert.match(await leaving.textContent('#notice'), /Your account has been deleted/);
    assert.equal(await leaving.evaluate(() => sessionStorage.length), 0);
    const me = await fetch(`${server.url}/api/v1/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(me.status, 401, 'the token is gone');
    await leaving.close();
  });

  it('offers support on the login page, without an account', STEP, async () => {
    const visitor = await newPage(browser, errors, { locale: 'en-IE' });
    await visitor.goto(server.url);
    await visitor.waitForSelector('#auth-view:not([hidden])');
    await visitor.click('#get-support');
    await visitor.waitForSelector('#support-dialog[open] #support-list .resource');
    assert.equal(await visitor.inputValue('#support-region'), 'IE', 'the region follows the browser');
    assert.match(await visitor.textContent('#support-list .resource'), /Samaritans|Pieta|50808/);
    await visitor.selectOption('#support-region', 'NZ');
    await visitor.waitForSelector('#support-list .resource:has-text("1737")');
    assert.deepEqual(await accessibilityViolations(visitor), [], 'WCAG 2.2 AA: support on the login page');
    await visitor.screenshot({ path: join(SCREENSHOTS, 'get-support.png') });
    await visitor.context().close();
  });

  it('raised no errors in any page', () => {
    assert.deepEqual(errors, []);
  });
});

describe('registration by invitation', () => {
  let server;
  let browser;
  const errors = [];

  before(async () => {
    server = await Server.start({ ALONGSIDE_REGISTRATION: 'invite' });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  it('asks for an invite code, refuses a wrong one and welcomes the right one', STEP, async () => {
    const code = server.createInvite();
    const page = await newPage(browser, errors);
    await page.goto(server.url);
    await page.waitForSelector('#register-invite', { state: 'visible' });
    await page.fill('#register-username', 'newcomer');
    await page.fill('#register-password', 'a long enough password');
    await page.fill('#register-invite', 'not-the-code');
    await page.click('#register-form button[type=submit]');
    await page.waitForSelector('#notice:has-text("invite code does not work")');
    await page.fill('#register-invite', code);
    await page.click('#register-form button[type=submit]');
    await page.waitForSelector('#whoami:has-text("newcomer")');
    assert.deepEqual(errors, []);
  });
});
