// Browser tests of the sharing-monitor website, run by hub/tests/monitor_browser.rs against a
// real hub tree it started and seeded. Debian's chromium (never a downloaded browser) driven by
// playwright-core; axe-core checks WCAG 2.1 A/AA on every page; screenshots for the README.
//
// Environment: MONITOR_URL (the national node's monitor), BROKEN_URL (the monitor of a node
// whose store was tampered with), EXPECTED (a JSON file: GetSharingStats' departments as rows,
// the stale child, the member token), SCREENSHOTS_DIR, CHROMIUM. Exits non-zero on a failure.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const base = process.env.MONITOR_URL;
const broken = process.env.BROKEN_URL;
const shots = process.env.SCREENSHOTS_DIR;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(base && broken && shots && process.env.EXPECTED, 'MONITOR_URL, BROKEN_URL, EXPECTED or SCREENSHOTS_DIR is not set');
const expected = JSON.parse(readFileSync(process.env.EXPECTED, 'utf8'));
if (!existsSync(executablePath)) {
  console.error(`no browser at ${executablePath}: apt-get install -y chromium`);
  process.exit(2);
}
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const profile = mkdtempSync(join(tmpdir(), 'govdc-chromium-monitor-'));
const started = Date.now();
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  // The pages' policy forbids every script, axe-core included; bypassing it also means that
  // nothing but escaping stands between what departments wrote and the browser.
  bypassCSP: true,
  locale: 'zh-CN',
  viewport: { width: 1280, height: 900 },
  timeout: 30_000,
});
let failures = 0;
async function check(name, body) {
  const t = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.setDefaultNavigationTimeout(10_000);
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  async function axe(url) {
    const response = await page.goto(url);
    await page.evaluate(axeSource);
    const result = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
    const found = result.violations.map((v) =>
      `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join('\n    ')}`);
    assert.deepEqual(found, [], `axe-core on ${url}`);
    assert.ok(result.passes.length > 10, `axe-core ran few rules on ${url}`);
    return response;
  }
  const cells = (selector) => page.$$eval(selector, (rows) => rows.map((r) =>
    [...r.querySelectorAll('th, td')].map((c) => c.textContent.replace(/\s+/g, ' ').trim())));

  async function signIn(token) {
    await page.goto(`${base}/signin`);
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(/\/mine$/), page.click('form.signin button')]);
  }

  await check('no WCAG 2.1 A/AA violation on any page (axe-core), both languages', async () => {
    const paths = [
      '/', '/?lang=en', '/sharing/departments', '/sharing/departments?lang=en&sort=rate&order=desc',
      '/sharing/provinces', '/sharing/provinces?lang=en', '/catalogue', '/catalogue?share=not-shared&lang=en',
      '/catalogue?q=%E4%BC%81%E4%B8%9A', '/timeliness', '/timeliness?lang=en', '/federation', '/federation?lang=en',
      '/audit', '/audit?lang=en', '/signin', '/signin?lang=en', '/?debug=1', '/no/such/page',
    ];
    for (const path of paths) await axe(base + path);
    await axe(`${broken}/audit`);
    await axe(`${broken}/?lang=en`);
    await signIn(expected.token);
    await axe(`${base}/mine`);
    await axe(`${base}/mine?lang=en`);
  });

  await check("the 共享率 tables are GetSharingStats' answer, sorted by a header click, and the CSV is the same", async () => {
    await page.goto(`${base}/sharing/departments?sort=name&order=asc`);
    const shown = (await cells('#stats tbody tr')).map((r) => [r[0].split(' ')[0], ...r.slice(1)]);
    assert.deepEqual(shown, expected.departments);
    // A click on the rate heading sorts by it, largest first; the heading says so.
    await Promise.all([page.waitForURL(/sort=rate/), page.click('#stats thead th:nth-child(5) a')]);
    assert.equal(await page.getAttribute('#stats thead th:nth-child(5)', 'aria-sort'), 'descending');
    const rates = (await cells('#stats tbody tr')).map((r) => parseFloat(r[4]));
    assert.deepEqual(rates, [...rates].sort((a, b) => b - a));
    const csvUrl = await page.getAttribute('a.csv', 'href');
    const csv = await (await fetch(new URL(csvUrl, base))).text();
    const lines = csv.trim().split('\r\n');
    assert.equal(lines.length, expected.departments.length + 1, csv);
    assert.match(lines[0], /^credit_code,name,node,resources/);
    // Back returns to the order by code.
    await page.goBack();
    assert.deepEqual((await cells('#stats tbody tr')).map((r) => [r[0].split(' ')[0], ...r.slice(1)]), expected.departments);
    // The trend: a chart named for screen readers and a table of the same points beside it.
    assert.equal(await page.getAttribute('svg.trend', 'role'), 'img');
    const dots = await page.$$eval('svg.trend circle', (c) => c.length);
    assert.equal(dots, (await cells('#trend tbody tr')).length);
  });

  await check('a stalled child is stale and a pushing one current', async () => {
    await page.goto(`${base}/federation?lang=en`);
    const rows = await cells('#children tbody tr');
    const state = (name) => rows.find((r) => r[0] === name)?.[4];
    assert.equal(state(expected.current_child), 'Current', JSON.stringify(rows));
    assert.equal(state(expected.stale_child), 'Stale', JSON.stringify(rows));
    await page.goto(`${base}/sharing/provinces?lang=en`);
    const provinces = await cells('#stats tbody tr');
    const stale = provinces.find((r) => r[0].startsWith(expected.stale_child));
    assert.ok(stale && stale[6].includes('Stale'), JSON.stringify(provinces));
  });

  await check('the audit badge is green on an intact chain and red on a tampered one', async () => {
    await page.goto(`${base}/?lang=en`);
    assert.match(await page.textContent('.audit-badge'), /^Verified up to record \d+ \(SHA-256\)$/);
    const green = await page.$eval('.audit-badge', (e) => getComputedStyle(e).backgroundColor);
    await page.goto(`${broken}/?lang=en`);
    assert.match(await page.textContent('.audit-badge'), /^Verification failed at record 3 /);
    const red = await page.$eval('.audit-badge', (e) => getComputedStyle(e).backgroundColor);
    assert.equal(red, 'rgb(212, 53, 28)');
    assert.notEqual(green, red);
  });

  await check('a department signs in by form and sees its own requests; the token is never in a URL', async () => {
    await context.clearCookies();
    await page.goto(`${base}/mine`);
    assert.ok(page.url().endsWith('/signin'), page.url());
    await signIn(expected.token);
    assert.ok(!page.url().includes(expected.token));
    const requests = await cells('#my-requests tbody tr');
    assert.equal(requests.length, expected.own_requests, JSON.stringify(requests));
    assert.ok(requests.every((r) => r[2] === expected.provider), JSON.stringify(requests));
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'govdc_monitor_session');
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));
    assert.ok(!cookies.some((c) => c.value.includes(expected.token)));
    await page.goto(`${base}/`);
    assert.match(await page.textContent('.account'), new RegExp(expected.consumer));
    await page.goto(`${base}/mine`);
    await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.click('form.signout button')]);
    await page.goto(`${base}/mine`);
    assert.ok(page.url().endsWith('/signin'), page.url());
  });

  await check('what departments wrote is text, and nothing runs', async () => {
    await page.goto(`${base}/catalogue?share=not-shared`);
    const names = await page.$$eval('.resource .card-title', (h) => h.map((e) => e.textContent));
    assert.ok(names.includes(expected.hostile), JSON.stringify(names));
    await page.goto(`${base}/sharing/departments`);
    await signIn(expected.token);
    await page.goto(`${base}/catalogue?q=%22%3E%3Cscript%3Ewindow.__xss%3D4%3C%2Fscript%3E`);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
  });

  await check('the language switch keeps the path and the query', async () => {
    await page.goto(`${base}/catalogue?share=not-shared`);
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    await Promise.all([page.waitForURL(/lang=en/), page.click('.lang-switch')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    const url = new URL(page.url());
    assert.equal(url.pathname, '/catalogue');
    assert.equal(url.searchParams.get('share'), 'not-shared');
  });

  await check('screenshots at 375 and 1280 px, no page wider than the screen', async () => {
    mkdirSync(shots, { recursive: true });
    const shot = new Set(['overview', 'departments', 'federation', 'audit-broken', 'catalogue']);
    for (const [width, height] of [[375, 812], [1280, 900]]) {
      await page.setViewportSize({ width, height });
      for (const [name, url] of [
        ['overview', `${base}/`], ['departments', `${base}/sharing/departments`],
        ['provinces', `${base}/sharing/provinces?lang=en`], ['timeliness', `${base}/timeliness`],
        ['federation', `${base}/federation?lang=en`], ['audit-broken', `${broken}/audit?lang=en`],
        ['catalogue', `${base}/catalogue?share=not-shared`], ['mine', `${base}/mine`],
      ]) {
        await page.goto(url);
        if (shot.has(name)) {
          await page.screenshot({ path: join(shots, `monitor-${name}-${width}.png`), fullPage: width === 1280 });
        }
        // A phone scrolls down, not sideways (wide tables scroll inside their own region).
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${url} is ${overflow} px wider than ${width} px`);
      }
    }
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${failures} failed, ${Date.now() - started} ms`);
process.exit(failures ? 1 : 0);
