// The dashboard: a board of tasks, a task page and a workers page over the JSON API, kept live by
// the /api/events stream. Every text from the server goes in through textContent, never as HTML.
'use strict';

const COLUMNS = [
  ['queued', 'Queued', ['DISCOVERED', 'CLAIMED']],
  ['running', 'Running', ['ROUTED', 'PROVISIONED', 'RUNNING']],
  ['verifying', 'Verifying', ['VERIFYING']],
  ['landed', 'Landed', ['LANDED']],
  ['failed', 'Failed / blocked', ['FAILED', 'BLOCKED']],
  ['cancelled', 'Cancelled', ['CANCELLED']],
];
const FINISHED = ['LANDED', 'BLOCKED', 'CANCELLED'];
const main = document.getElementById('main');

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function token() { return localStorage.getItem('polyphony-token') || ''; }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h.Authorization = 'Bearer ' + token();
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const res = await fetch(path, opts);
  if (res.status === 401) document.getElementById('token-form').hidden = false;
  const body = await res.json().catch(() => ({ error: 'the answer was not JSON' }));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function post(path, body) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

// The event stream, read with fetch so it carries the token header; reconnects with back-off.
const listeners = new Set();
async function follow() {
  const live = document.getElementById('live');
  let after = null;
  let delay = 500;
  for (;;) {
    try {
      const res = await fetch('/api/events' + (after === null ? '' : '?after=' + after), { headers: headers() });
      if (!res.ok) throw new Error(res.statusText);
      live.textContent = 'live';
      live.classList.remove('off');
      delay = 500;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const msg = { event: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) msg.event = line.slice(7);
            else if (line.startsWith('data: ')) msg.data += line.slice(6);
            else if (line.startsWith('id: ')) after = line.slice(4);
          }
          if (msg.event === 'message') continue;
          const data = msg.data ? JSON.parse(msg.data) : {};
          for (const f of listeners) f(msg.event, data);
        }
      }
    } catch (e) {
      // fall through to the reconnect
    }
    live.textContent = 'reconnecting';
    live.classList.add('off');
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// Replaces the children of `node`, leaving out the null ones.
function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}

function showError(where, e) {
  where.replaceChildren(el('p', { class: 'error' }, e.message || String(e)));
}

// ---- board ----

function card(t) {
  const landed = t.state === 'LANDED';
  const link = t.pull_request ? el('a', { href: t.pull_request, rel: 'noreferrer' }, 'pull request')
    : landed && t.merged_commit ? el('code', {}, t.merged_commit.slice(0, 12)) : null;
  return el('div', { class: 'card', 'data-task-id': t.id, 'data-state': t.state },
    el('div', { class: 'title' }, el('a', { href: '/tasks/' + t.id }, t.title || t.id)),
    el('div', { class: 'meta' }, t.id, ' · ', el('span', { class: 'state state-' + t.state }, t.state)),
    el('div', { class: 'meta' }, 'repo ', t.repo),
    el('div', { class: 'meta' }, 'agent ', t.agent || '-', ' · plan ', t.plan || '-', ' · score ',
      t.score === null ? '-' : t.score, ' · attempt ', t.attempt),
    el('div', { class: 'meta' }, 'age ', age(t.created_at_ms), t.worker ? ' · worker ' + t.worker : ''),
    link ? el('div', { class: 'meta' }, landed ? 'landed ' : '', link) : null,
    t.reason && ['FAILED', 'BLOCKED', 'CANCELLED'].includes(t.state) ? el('div', { class: 'meta' }, t.reason) : null);
}

function filterSelect(name, values, current, onchange) {
  const select = el('select', { name, onchange }, el('option', { value: '' }, 'any ' + name));
  for (const v of [...new Set(values)].filter(Boolean).sort()) {
    const o = el('option', { value: v }, v);
    if (v === current) o.selected = true;
    select.append(o);
  }
  return select;
}

function spawnForm() {
  const status = el('span', { class: 'dim', id: 'spawn-status' });
  const form = el('form', { class: 'spawn', id: 'spawn-form' },
    el('input', { name: 'title', placeholder: 'title', required: '' }),
    el('input', { name: 'repo', placeholder: 'repo (a repos: name, path or URL)', required: '' }),
    el('input', { name: 'agent', placeholder: 'agent (empty: route)' }),
    el('input', { name: 'labels', placeholder: 'labels, comma separated' }),
    el('textarea', { name: 'body', placeholder: 'what to do', rows: '2' }),
    el('button', { type: 'submit' }, 'Spawn'), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const labels = String(f.get('labels') || '').split(',').map((s) => s.trim()).filter(Boolean);
    if (!confirm('Spawn the task "' + f.get('title') + '" on ' + f.get('repo') + '?')) return;
    try {
      const r = await post('/api/tasks', { title: f.get('title'), repo: f.get('repo'), agent: f.get('agent'),
        body: f.get('body'), labels });
      status.className = 'notice';
      status.textContent = 'spawned ' + r.task_id;
      form.reset();
    } catch (e) {
      status.className = 'error';
      status.textContent = e.message;
    }
  });
  return el('details', {}, el('summary', {}, 'New task'), form);
}

function board() {
  const params = new URLSearchParams(location.search);
  const filters = el('div', { class: 'filters' });
  const columns = el('div', { class: 'board' });
  main.replaceChildren(spawnForm(), filters, columns);
  const render = (tasks) => {
    const keep = (t) => (!params.get('repo') || t.repo === params.get('repo')) &&
      (!params.get('agent') || t.agent === params.get('agent')) &&
      (!params.get('state') || t.state === params.get('state')) &&
      (!params.get('label') || t.labels.includes(params.get('label')));
    const change = (name) => (ev) => {
      if (ev.target.value) params.set(name, ev.target.value); else params.delete(name);
      history.replaceState(null, '', '/?' + params.toString());
      render(tasks);
    };
    filters.replaceChildren(
      filterSelect('repo', tasks.map((t) => t.repo), params.get('repo'), change('repo')),
      filterSelect('agent', tasks.map((t) => t.agent), params.get('agent'), change('agent')),
      filterSelect('state', tasks.map((t) => t.state), params.get('state'), change('state')),
      filterSelect('label', tasks.flatMap((t) => t.labels), params.get('label'), change('label')));
    columns.replaceChildren(...COLUMNS.map(([id, title, states]) => {
      const mine = tasks.filter((t) => states.includes(t.state) && keep(t));
      return el('section', { class: 'column', id: 'column-' + id },
        el('h2', {}, title + ' (' + mine.length + ')'), ...mine.map(card));
    }));
  };
  const load = async () => {
    try { render(await api('/api/tasks')); } catch (e) { showError(columns, e); }
  };
  listeners.add(debounce(load, 100));
  setInterval(load, 30000);  // ages
  load();
}

// ---- task page ----

function attemptRows(task) {
  const rows = new Map();
  for (const e of task.events) {
    if (e.from === e.to || !e.attempt) continue;
    const r = rows.get(e.attempt) || { attempt: e.attempt, start: null, end: null, worker: '', runs: [] };
    if (e.to === 'RUNNING' && r.start === null) r.start = e.at_ms;
    if (['LANDED', 'FAILED', 'CANCELLED', 'BLOCKED'].includes(e.to)) r.end = e.at_ms;
    if (e.worker) r.worker = e.worker;
    rows.set(e.attempt, r);
  }
  for (const run of task.agent_runs) {
    const r = rows.get(run.attempt) || { attempt: run.attempt, start: null, end: null, worker: '', runs: [] };
    r.runs.push(run);
    rows.set(run.attempt, r);
  }
  return [...rows.values()].sort((a, b) => a.attempt - b.attempt);
}

function duration(r) {
  if (r.start === null) return '-';
  const s = Math.round(((r.end || Date.now()) - r.start) / 1000);
  return (s >= 60 ? Math.floor(s / 60) + 'm ' : '') + (s % 60) + 's' + (r.end ? '' : ' so far');
}

function attemptsTable(task) {
  const rows = attemptRows(task);
  const body = rows.flatMap((r) => (r.runs.length ? r.runs : [null]).map((run) => el('tr', {},
    el('td', {}, r.attempt), el('td', {}, run ? run.role : '-'), el('td', {}, run ? run.agent : task.agent),
    el('td', {}, run && run.model ? run.model : '-'), el('td', {}, duration(r)),
    el('td', {}, run ? run.input_tokens + ' in / ' + run.output_tokens + ' out' : '-'),
    el('td', {}, run && run.cost_usd ? '$' + run.cost_usd.toFixed(4) : '-'), el('td', {}, r.worker || '-'))));
  return el('table', { id: 'attempts' }, el('tr', {}, ...['attempt', 'role', 'agent', 'model', 'duration', 'tokens',
    'cost', 'worker'].map((h) => el('th', {}, h))), ...body);
}

function history(task) {
  return el('table', { id: 'history' },
    el('tr', {}, ...['at', 'from', 'to', 'attempt', 'worker', 'reason'].map((h) => el('th', {}, h))),
    ...task.events.map((e) => el('tr', {}, el('td', {}, e.at), el('td', {}, e.from || '-'),
      el('td', { class: 'state state-' + e.to }, e.from === e.to ? 'note' : e.to), el('td', {}, e.attempt),
      el('td', {}, e.worker || '-'), el('td', {}, e.reason))));
}

// The score's evidence is the reason of the last claim; the rule and the agent, the routing's.
function routeExplanation(task) {
  const last = (state) => task.events.filter((e) => e.to === state && e.from !== e.to).pop();
  const claimed = last('CLAIMED');
  const routed = last('ROUTED');
  return el('div', { id: 'route' },
    el('div', {}, 'score ', task.score === null ? '-' : task.score + '/10', ' · plan ', task.plan || '-',
      task.reviewer ? ' (reviewer ' + task.reviewer + ')' : '', ' · agent ', task.agent || '-'),
    claimed && claimed.reason ? el('div', { class: 'dim' }, 'claimed: ', claimed.reason) : null,
    routed && routed.reason ? el('div', { class: 'dim' }, 'routed: ', routed.reason) : null);
}

function actions(task, status) {
  const act = (action) => async () => {
    if (!confirm(action[0].toUpperCase() + action.slice(1) + ' task ' + task.id + '?')) return;
    try {
      const r = await post('/api/tasks/' + task.id + '/' + action, {});
      status.className = 'notice';
      status.textContent = 'task ' + task.id + ' is ' + r.state;
    } catch (e) {
      status.className = 'error';
      status.textContent = action + ' refused: ' + e.message;
    }
  };
  return el('div', { class: 'actions' },
    el('button', { id: 'cancel', onclick: act('cancel'), ...(FINISHED.includes(task.state) ? { disabled: '' } : {}) },
      'Cancel'),
    el('button', { id: 'retry', onclick: act('retry'),
      ...(['FAILED', 'BLOCKED'].includes(task.state) ? {} : { disabled: '' }) }, 'Retry'), status);
}

// Follows one attempt's log streams: appends what each grew by, until the task is finished.
function logFollower(id, attempt, box, isDone) {
  const streams = ['system', 'agent', 'verify', 'review'];
  const offsets = Object.fromEntries(streams.map((s) => [s, 0]));
  const pres = Object.fromEntries(streams.map((s) => [s, el('pre', { class: 'log', id: 'log-' + s })]));
  box.replaceChildren(...streams.map((s) => el('div', { hidden: '' }, el('h3', {}, s), pres[s])));
  let stopped = false;
  const tick = async () => {
    const last = isDone();
    for (const s of streams) {
      for (;;) {
        const r = await api('/api/tasks/' + id + '/log?attempt=' + attempt + '&stream=' + s + '&offset=' + offsets[s]);
        if (!r.text) break;
        offsets[s] = r.next;
        pres[s].append(r.text);
        pres[s].parentNode.hidden = false;
        pres[s].scrollTop = pres[s].scrollHeight;
        if (r.next >= r.size) break;
      }
    }
    if (!stopped && !last) setTimeout(() => tick().catch(() => setTimeout(tick, 2000)), 1000);
  };
  tick().catch(() => {});
  return () => { stopped = true; };
}

function taskPage(id) {
  const head = el('div', {});
  const status = el('span', { id: 'action-status' });
  const logBox = el('div', { id: 'log' });
  const attemptPick = el('select', { id: 'attempt-pick' });
  main.replaceChildren(head, el('h2', {}, 'Log ', attemptPick), logBox);
  let task = null;
  let follower = null;
  const startLog = (attempt) => {
    if (follower) follower();
    follower = logFollower(id, attempt, logBox, () => task && FINISHED.includes(task.state));
  };
  attemptPick.addEventListener('change', () => startLog(attemptPick.value));
  const load = async () => {
    try {
      const before = task;
      task = await api('/api/tasks/' + id);
      document.title = 'Polyphony · ' + task.id;
      fill(head,
        el('h1', { id: 'task-title' }, task.title),
        el('div', {}, task.id, ' · ', el('span', { class: 'state state-' + task.state, id: 'task-state' }, task.state),
          task.reason ? ' · ' + task.reason : ''),
        el('div', { class: 'dim' }, 'repo ', task.repo, task.branch ? ' · branch ' + task.branch : '',
          task.merged_commit ? ' · landed ' + task.merged_commit : ''),
        task.pull_request ? el('div', {}, el('a', { href: task.pull_request, rel: 'noreferrer' }, task.pull_request))
          : null,
        actions(task, status), el('h2', {}, 'Route'), routeExplanation(task), el('h2', {}, 'Attempts'),
        attemptsTable(task), el('h2', {}, 'History'), history(task),
        task.body ? el('details', {}, el('summary', {}, 'Body'), el('pre', {}, task.body)) : null);
      const attempts = Math.max(task.attempt, 1);
      if (!before || before.attempt !== task.attempt) {
        attemptPick.replaceChildren(...Array.from({ length: attempts }, (_, i) =>
          el('option', { value: String(i + 1) }, 'attempt ' + (i + 1))));
        attemptPick.value = String(attempts);
        startLog(attempts);
      } else if (FINISHED.includes(task.state) && !FINISHED.includes(before.state)) {
        startLog(attemptPick.value);  // one last read of what the end wrote
      }
    } catch (e) {
      showError(head, e);
    }
  };
  listeners.add((event, data) => { if (event !== 'transition' || data.task_id === id) load(); });
  load();
}

// ---- workers page ----

function workersPage() {
  const box = el('div', {});
  main.replaceChildren(el('h1', {}, 'Workers'), box);
  const load = async () => {
    try {
      const r = await api('/api/workers');
      const rows = r.workers.map((w) => el('tr', { 'data-worker-id': w.id },
        el('td', {}, w.id), el('td', { class: 'state' }, w.state),
        el('td', {}, (w.heartbeat_age_ms / 1000).toFixed(1) + 's ago'), el('td', {}, w.load + '/' + w.capacity),
        el('td', {}, w.labels.join(', ') || '-'),
        el('td', {}, ...w.running.flatMap((t, i) => [i ? ', ' : '', el('a', { href: '/tasks/' + t }, t)])),
        el('td', {}, w.version), el('td', {}, w.hostname)));
      fill(box, el('p', { class: 'dim' }, 'coordinator ', r.coordinator),
        el('table', { id: 'workers' }, el('tr', {}, ...['worker', 'state', 'heartbeat', 'load', 'labels', 'tasks',
          'version', 'host'].map((h) => el('th', {}, h))), ...rows),
        r.workers.length ? null : el('p', {}, 'No worker has registered.'));
    } catch (e) {
      showError(box, e);
    }
  };
  listeners.add(debounce(load, 100));
  setInterval(load, 2000);
  load();
}

document.getElementById('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem('polyphony-token', document.getElementById('token').value.trim());
  location.reload();
});

const path = location.pathname;
const taskMatch = path.match(/^\/tasks\/([A-Za-z0-9_-]+)$/);
if (taskMatch) taskPage(taskMatch[1]);
else if (path === '/workers') { document.getElementById('nav-workers').className = 'current'; workersPage(); }
else { document.getElementById('nav-board').className = 'current'; board(); }
follow();
