// Drives the dashboard of a running `polyphony serve` in headless Chromium (puppeteer-core):
// spawns a task from the board's form and watches it land without a reload, follows a running
// agent's log on its task page, cancels it from there, and opens the workers page.
// The listener is off loopback, so the page must first be refused without the token, then be
// given it through its token form.
// Environment: DASHBOARD_URL, TOKEN, ORIGIN (the repo to spawn on), ARTIFACTS (screenshots go
// there), CHROMIUM (the browser). Prints one JSON line {landed, cancelled, title}; exits 1 on a failure.
'use strict';

const puppeteer = require('puppeteer-core');
const path = require('path');

const url = process.env.DASHBOARD_URL;
const origin = process.env.ORIGIN;
const artifacts = process.env.ARTIFACTS;
const token = process.env.TOKEN;
const hostileTitle = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> greet';

function check(condition, what) {
  if (!condition) throw new Error('check failed: ' + what);
}

function shBlock(script) {
  return 'Do it.\n\n```sh\n' + script + '\n```\n';
}

async function noReloadSince(page) {
  return page.evaluate(() => window.__noReload === true);
}

async function login(page) {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#token-form:not([hidden])', { timeout: 15000 });
  const status = await page.evaluate(async () => (await fetch('/api/tasks')).status);
  check(status === 401, 'a request without the token is refused: ' + status);
  check(await page.$eval('#main', (m) => !m.querySelector('.card')), 'no task is shown without the token');
  await page.type('#token', token);
  await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('#token-form button')]);
}

async function board(page) {
  await page.waitForSelector('#column-landed');
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', { timeout: 15000 });
  // Remember every state a card shows, to see it move; a reload would lose both marks.
  await page.evaluate(() => {
    window.__noReload = true;
    window.__seen = {};
    const note = () => document.querySelectorAll('.card').forEach((c) => {
      const s = (window.__seen[c.dataset.taskId] = window.__seen[c.dataset.taskId] || []);
      if (s[s.length - 1] !== c.dataset.state) s.push(c.dataset.state);
    });
    new MutationObserver(note).observe(document.getElementById('main'), { childList: true, subtree: true });
  });
  await page.click('details summary');
  const set = (name, value) => page.$eval('#spawn-form [name=' + name + ']', (e, v) => { e.value = v; }, value);
  await set('title', hostileTitle);
  await set('repo', origin);
  await set('agent', 'scripted');
  await set('body', shBlock("echo 'hello from the board' > board.txt"));
  await page.click('#spawn-form button[type=submit]');
  await page.waitForFunction(() => /^spawned /.test(document.getElementById('spawn-status').textContent),
    { timeout: 15000 });
  const id = (await page.$eval('#spawn-status', (e) => e.textContent)).slice('spawned '.length);
  await page.waitForFunction((i) => document.querySelector('#column-landed [data-task-id="' + i + '"]'),
    { timeout: 240000 }, id);
  check(await noReloadSince(page), 'the board landed the task without a reload');
  const seen = await page.evaluate((i) => window.__seen[i], id);
  check(seen.length >= 2 && seen[seen.length - 1] === 'LANDED', 'the card moved to LANDED live: ' + seen);
  const title = await page.$eval('[data-task-id="' + id + '"] .title', (e) => e.textContent);
  check(title === hostileTitle, 'the title renders as text: ' + title);
  check(await page.evaluate(() => window.__pwned === undefined), 'no script of the title ran');
  check(await page.$eval('#main', (m) => m.querySelector('script, img') === null), 'no element from the title');
  await page.screenshot({ path: path.join(artifacts, 'dashboard-board.png'), fullPage: true });
  return { id, title };
}

async function taskPage(page) {
  const body = shBlock('for i in $(seq 1 90); do echo "tick $i"; sleep 1; done');
  const id = await page.evaluate(async (repo, text) => {
    const r = await fetch('/api/tasks', { method: 'POST',
      headers: { 'Content-Type': 'application/json',
        Authorization: 'Bearer ' + localStorage.getItem('polyphony-token') },
      body: JSON.stringify({ title: 'Count slowly', repo, agent: 'scripted', body: text }) });
    return (await r.json()).task_id;
  }, origin, body);
  check(id, 'the API spawned the counting task');
  await page.goto(url + 'tasks/' + id, { waitUntil: 'domcontentloaded' });
  await page.evaluate(() => { window.__noReload = true; });
  const logHas = (n) => page.waitForFunction((k) => new RegExp('tick ' + k + '\\b')
    .test((document.getElementById('log-agent') || {}).textContent || ''), { timeout: 180000 }, n);
  await logHas(2);
  const first = await page.$eval('#log-agent', (e) => e.textContent.length);
  await logHas(5);
  const later = await page.$eval('#log-agent', (e) => e.textContent.length);
  check(later > first && (await noReloadSince(page)), 'the log grew on the page without a reload');
  check((await page.$eval('#task-state', (e) => e.textContent)) === 'RUNNING', 'the task is still running');
  await page.screenshot({ path: path.join(artifacts, 'dashboard-task.png'), fullPage: true });
  await page.click('#cancel');  // the confirmation is accepted by the dialog handler
  await page.waitForFunction(() => (document.getElementById('task-state') || {}).textContent === 'CANCELLED',
    { timeout: 60000 });
  return id;
}

async function workersPage(page) {
  await page.goto(url + 'workers', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#workers tr[data-worker-id]', { timeout: 15000 });
  const state = await page.$eval('#workers tr[data-worker-id] .state', (e) => e.textContent);
  check(['ready', 'busy'].includes(state), 'the embedded worker is listed as ready or busy: ' + state);
  await page.screenshot({ path: path.join(artifacts, 'dashboard-workers.png'), fullPage: true });
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1500, height: 900 });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/401/.test(m.text())) errors.push(m.text()); });
    page.on('dialog', (d) => d.accept());
    await login(page);
    const landed = await board(page);
    const cancelled = await taskPage(page);
    await workersPage(page);
    check(errors.length === 0, 'no script error on the pages: ' + errors.join('; '));
    console.log(JSON.stringify({ landed: landed.id, title: landed.title, cancelled }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
