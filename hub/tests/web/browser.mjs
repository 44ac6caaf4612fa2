// Browser tests of the open-data website, run by hub/tests/portal_browser.rs against a real hub
// it started and seeded. Debian's chromium (never a downloaded browser) driven by playwright-core;
// axe-core checks WCAG 2.1 A/AA on every page; screenshots for the README.
//
// Environment: PORTAL_URL (the hub's portal), SCREENSHOTS_DIR (where PNGs go), APPROVAL_FILE
// (where the application flow asks the test to approve, as the operator), CHROMIUM (the browser,
// /usr/bin/chromium by default). Exits non-zero when a check failed.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const base = process.env.PORTAL_URL;
const shots = process.env.SCREENSHOTS_DIR;
// Where the script asks the Rust side to approve an application, as the platform operator would
// (it writes the application's number to this file; the test approves it over gRPC).
const approvals = process.env.APPROVAL_FILE;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(base, 'PORTAL_URL is not set');
assert.ok(shots, 'SCREENSHOTS_DIR is not set');
if (!existsSync(executablePath)) {
  console.error(`no browser at ${executablePath}: apt-get install -y chromium`);
  process.exit(2);
}
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const BUS = 'hz-transport.bus-stops';
const PENALTIES = 'hz-credit.penalties';
const CLINICS = 'zj-health.clinics';
const HOSTILE = 'test-web.hostile';
const HOSTILE_TITLE = "<script>window.__xss = 1</script><b>Bold</b> & \"quoted\" 'single' 测试";
const HOSTILE_DEPARTMENT = '<i>测试部门</i>';

const profile = mkdtempSync(join(tmpdir(), 'govdc-chromium-'));
const started = Date.now();
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  // The pages' policy forbids every script, axe-core included; bypassing it also means that
  // nothing but escaping stands between a hostile title and the browser.
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
    await axeHere(url);
    return response;
  }

  // axe-core on the page as it is now (a form's answer, say), without loading it again.
  async function axeHere(url) {
    await page.evaluate(axeSource);
    const result = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
    const found = result.violations.map((v) =>
      `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join('\n    ')}`);
    assert.deepEqual(found, [], `axe-core on ${url}`);
    assert.ok(result.passes.length > 10, `axe-core ran few rules on ${url}`);
  }

  const results = () => page.$$eval('.card-title a', (links) => links.map((a) => a.textContent));

  await check('no WCAG 2.1 A/AA violation on any page (axe-core), both languages', async () => {
    for (const path of [
      '/', '/?lang=en', '/datasets', '/datasets?q=%E6%9D%AD%E5%B7%9E&lang=en',
      '/datasets?category=statistics&openness=unconditional&sort=newest',
      `/datasets/${BUS}`, `/datasets/${BUS}?lang=en`, `/datasets/${PENALTIES}`,
      `/datasets/${CLINICS}?lang=en`, `/datasets/${HOSTILE}`, '/datasets?page=0', '/datasets/no.such',
      '/datasets?sort=downloads&lang=en', '/departments', '/departments?lang=en',
      '/departments/no-such', '/departments?page=2', '/changes', '/changes?lang=en', '/changes?before=x',
      `/datasets/${CLINICS}/apply`, `/datasets/${CLINICS}/apply?lang=en`, `/datasets/${BUS}/apply`,
      '/applications/app-0000000000000000/0000',
    ]) {
      await axe(base + path);
    }
    // Every department's page, in both languages.
    await page.goto(`${base}/departments`);
    const departments = await page.$$eval('table.ranking tbody th a', (links) => links.map((a) => a.getAttribute('href')));
    assert.ok(departments.length >= 5, `departments: ${departments}`);
    for (const path of departments) {
      await axe(base + path);
      await axe(`${base}${path}?lang=en`);
    }
  });

  await check('the department ranking leads to a department and its datasets', async () => {
    await page.goto(`${base}/?lang=en`);
    await Promise.all([page.waitForURL(/\/departments\?lang=en$/), page.click('nav a:has-text("Departments")')]);
    const rows = await page.$$eval('table.ranking tbody tr', (r) => r.map((row) => row.querySelector('th a').textContent));
    assert.ok(rows.includes('杭州市市场监督管理局'), `${rows}`);
    assert.ok(rows.includes(HOSTILE_DEPARTMENT), `the hostile name as text: ${rows}`);
    await Promise.all([page.waitForURL(/\/departments\/[0-9a-z]+\?lang=en$/), page.click('table.ranking a:has-text("杭州市市场监督管理局")')]);
    assert.equal(await page.textContent('h1'), '杭州市市场监督管理局');
    const listed = (await results()).sort();
    assert.deepEqual(listed, ['杭州市企业登记信息', '杭州市行政处罚信息'].sort());
    await Promise.all([page.waitForURL(/\/datasets\?lang=en&department=/), page.click('a:has-text("Filter the catalogue by this department")')]);
    assert.deepEqual((await results()).sort(), listed);
  });

  await check('a dataset page shows its timeliness, quality and history', async () => {
    await page.goto(`${base}/datasets/zj-weather.daily?lang=en`);
    assert.match(await page.textContent('.timeliness'), /^On time: the next version is due by \d{4}-\d\d-\d\d/);
    assert.equal(await page.$$eval('table.quality tbody tr', (r) => r.length), 5);
    assert.equal(await page.$$eval('table.history tbody tr', (r) => r.length), 1);
    assert.match(await page.textContent('table.history tbody tr'), /Published/);
  });

  await check('the skip link is the first stop of the keyboard and leads to main', async () => {
    await page.goto(`${base}/datasets`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => location.hash), '#main');
  });

  await check('a search, a facet click and Back', async () => {
    await page.goto(`${base}/`);
    await page.fill('#q', '杭州');
    await Promise.all([page.waitForURL(/\/datasets\?q=/), page.press('#q', 'Enter')]);
    const all = await results();
    assert.ok(all.length >= 5, `results: ${all}`);
    assert.match(await page.textContent('.results-count'), /找到 \d+ 个数据集/);
    // The education facet of this search.
    await Promise.all([
      page.waitForURL(/category=education/),
      page.click('.facets a:has-text("教育")'),
    ]);
    assert.deepEqual(await results(), ['杭州市中小学校名录']);
    assert.match(await page.textContent('.active-filters'), /领域: 教育/);
    await page.goBack();
    assert.ok(!page.url().includes('category='), page.url());
    assert.deepEqual(await results(), all);
    assert.equal(await page.inputValue('#q'), '杭州');
    await page.goForward();
    assert.deepEqual(await results(), ['杭州市中小学校名录']);
  });

  await check('the language switch keeps the path and the query', async () => {
    await page.goto(`${base}/datasets?q=%E5%85%AC%E4%BA%A4`);
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    await Promise.all([page.waitForURL(/lang=en/), page.click('.lang-switch')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    const url = new URL(page.url());
    assert.equal(url.pathname, '/datasets');
    assert.equal(url.searchParams.get('q'), '公交');
    assert.match(await page.textContent('.results-count'), /1 datasets found/);
    // Following a result stays in English.
    await Promise.all([page.waitForURL(/\/datasets\/hz-transport/), page.click('.card-title a')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
  });

  await check("a dataset page's links and checksums are the API's", async () => {
    const api = await (await fetch(`${base}/api/datasets/${BUS}`)).json();
    await page.goto(`${base}/datasets/${BUS}`);
    const shown = await page.$$eval('table.files tbody tr', (rows) => rows.map((r) => ({
      sha256: r.querySelector('code.sha256').textContent,
      url: r.querySelector('a.download').href,
    })));
    assert.deepEqual(shown, api.files.map((f) => ({ sha256: f.sha256, url: f.url })));
    assert.equal(await page.getAttribute('a.sums', 'href'), api.checksums);
    const sums = await (await fetch(api.checksums)).text();
    for (const f of api.files) assert.ok(sums.includes(`${f.sha256}  data.${f.format}.gz`), sums);
    const rows = await page.$$eval('table.preview tbody tr', (r) => r.length);
    assert.equal(rows, 10);
    assert.equal(await page.textContent('table.preview tbody tr td'), '00000');
  });

  await check('a conditional application from the form to the token to the download', async () => {
    assert.ok(approvals, 'APPROVAL_FILE is not set');
    const api = await (await fetch(`${base}/api/datasets/${CLINICS}`)).json();
    const file = api.files.find((f) => f.format === 'csv');
    // An anonymous download of the conditional file lands on the application form.
    await page.goto(file.url);
    assert.equal(new URL(page.url()).pathname, `/datasets/${CLINICS}/apply`);
    // The dataset page leads there too.
    await page.goto(`${base}/datasets/${CLINICS}?lang=en`);
    await Promise.all([page.waitForURL(/\/apply\?lang=en$/), page.click('a.apply-button')]);
    assert.match(await page.textContent('h1'), /^Apply for: /);
    // A purpose too short comes back with the problem named, linked to its field, and what was
    // written kept.
    await page.fill('#applicant', '王五 <b>测试</b>');
    await page.fill('#organisation', '杭州市疾病预防控制中心');
    await page.fill('#purpose', 'short');
    await page.fill('#contact', 'wangwu@example.cn');
    await Promise.all([page.waitForLoadState('load'), page.click('form.application-form button[type=submit]')]);
    assert.match(await page.textContent('.error-summary'), /The Purpose must be at least 10 characters/);
    assert.equal(await page.getAttribute('#purpose', 'aria-invalid'), 'true');
    assert.equal(await page.inputValue('#applicant'), '王五 <b>测试</b>');
    await axeHere('the form with a problem');
    await page.fill('#purpose', '研究杭州市医疗机构分布与就诊可及性，仅用于学术论文。');
    await Promise.all([page.waitForURL(/\/applications\/app-[0-9a-f]{16}\/[0-9a-f]{64}\?lang=en$/), page.click('form.application-form button[type=submit]')]);
    const status = page.url();
    assert.match(await page.textContent('.application-state'), /Waiting for a decision/);
    assert.ok((await page.textContent('dl.application')).includes('王五 <b>测试</b>'), 'the applicant as text');
    assert.equal(await page.$('form.collect'), null, 'nothing to collect before the decision');
    await axeHere(status);
    // The operator approves (the Rust side, over gRPC); the applicant comes back later.
    const number = (await page.textContent('.application-number')).trim();
    writeFileSync(approvals, number);
    const until = Date.now() + 30_000;
    for (;;) {
      await page.goto(status);
      if (await page.$('form.collect')) break;
      assert.ok(Date.now() < until, 'the application was not approved within 30 s');
      await page.waitForTimeout(250);
    }
    assert.match(await page.textContent('.application-state'), /Approved/);
    await axeHere(status);
    await page.click('form.collect button');
    await page.waitForSelector('#token');
    const token = await page.inputValue('#token');
    assert.match(token, /^gdt_[0-9a-f]{64}$/);
    assert.ok((await page.textContent('pre.snippet')).includes(token));
    await axeHere('the collected token');
    // Exactly once: the next visit says it was collected, and shows no token.
    await page.goto(status);
    assert.match(await page.textContent('.application-state'), /Token collected/);
    assert.equal(await page.$('#token'), null);
    assert.ok(!(await page.content()).includes(token));
    await axeHere(status);
    // The token downloads the file, whose SHA-256 is the one the page lists.
    const download = await page.request.get(file.url, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(download.status(), 200);
    const digest = createHash('sha256').update(await download.body()).digest('hex');
    assert.equal(digest, file.sha256);
    const refused = await page.request.get(file.url, { headers: { Authorization: 'Bearer gdt_0', Accept: 'application/json' } });
    assert.equal(refused.status(), 403);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
  });

  await check('a hostile title and description are text, and nothing runs', async () => {
    await page.goto(`${base}/datasets/${HOSTILE}`);
    assert.equal(await page.textContent('h1'), HOSTILE_TITLE);
    await page.goto(`${base}/datasets?q=Bold`);
    await page.hover('.card-title a');
    await page.goto(`${base}/datasets?q=%22%3E%3Cscript%3Ewindow.__xss%3D4%3C%2Fscript%3E`);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
  });

  await check('screenshots at 375 and 1280 px', async () => {
    mkdirSync(shots, { recursive: true });
    for (const [width, height] of [[375, 812], [1280, 900]]) {
      await page.setViewportSize({ width, height });
      for (const [name, path] of [['home', '/'], ['dataset', `/datasets/${PENALTIES}`], ['search', '/datasets?q=%E6%9D%AD%E5%B7%9E'], ['departments', '/departments'], ['apply', `/datasets/${CLINICS}/apply`]]) {
        await page.goto(base + path);
        if (name !== 'search' && name !== 'apply') await page.screenshot({ path: join(shots, `portal-${name}-${width}.png`) });
        // Nothing wider than the screen: a phone scrolls down, not sideways.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${path} is ${overflow} px wider than ${width} px`);
      }
    }
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${failures} failed, ${Date.now() - started} ms`);
process.exit(failures ? 1 : 0);
