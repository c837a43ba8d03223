// The Stratus console: a small single-page app over the same API the CLI uses.
//
// No framework and no build step: the server embeds this file as it is. Pages are chosen by the
// URL fragment (#/instances, #/create, #/instances/ID); every element is built with
// document.createElement and textContent, never from HTML strings, so nothing the API returns
// is interpreted as markup. The access token lives in sessionStorage (gone when the tab
// closes) and travels only in the Authorization header, never in a URL. The instances table
// follows a watch of the project (server-sent events read through fetch, since EventSource
// cannot send the Authorization header); other pages poll every two seconds while shown.
// Status changes are announced to screen readers.
'use strict';

const POLL_MS = 2000;
const SESSION_KEY = 'stratus.session';
const BUSY = ['PROVISIONING', 'STAGING', 'STOPPING', 'SUSPENDING'];

const state = { session: null, region: null, zone: null, timers: [], projects: [] };

// ---------------------------------------------------------------------------------------
// DOM helpers

/** Builds an element: h('a', {href: '#/x', class: 'y'}, 'text', child…). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);
const lastSegment = (uri) => (uri || '').split('/').pop();

function announce(text) {
  const announcer = $('announcer');
  announcer.textContent = '';
  setTimeout(() => { announcer.textContent = text; }, 50);
}

function statusPill(status) {
  const kind = ['RUNNING', 'READY', 'ACTIVE', 'UP', 'SCHEDULABLE', 'HEALTHY'].includes(status) ? 'running'
    : BUSY.includes(status) || ['PENDING', 'IMPORTING', 'DRAINING', 'REGISTERED'].includes(status) ? 'busy'
    : ['SUSPENDED', 'CORDONED', 'DEGRADED'].includes(status) ? 'suspended'
    : ['REPAIRING', 'FAILED', 'DOWN'].includes(status) ? 'failed' : 'stopped';
  return h('span', { class: `status ${kind}`, 'data-status': status }, status);
}

/** Puts `rows` into `tbody` in this order, moving only rows out of place: a moved element
 * loses keyboard focus, and tables update in place while they are shown. */
function placeInOrder(tbody, rows) {
  rows.forEach((row, index) => {
    if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
  });
}

function formatTime(text) {
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Shows a page: replaces the main content, sets the title, moves focus to the heading. */
function show(title, ...content) {
  stopPolling();
  const section = (location.hash.match(/^#\/([a-z-]+)/) || [])[1] || 'instances';
  for (const link of document.querySelectorAll('.sections a')) {
    const current = link.dataset.section === section || (section === 'create' && link.dataset.section === 'instances');
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  document.title = `${title} · Stratus console`;
  const main = $('main');
  main.replaceChildren(...content.filter(Boolean));
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

function poll(fn) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { if (!(e instanceof SignedOut)) console.warn(e); }
    if (!stopped) state.timers.push(setTimeout(tick, POLL_MS));
  };
  state.timers.push({ stop: () => { stopped = true; } });
  tick();
}

function stopPolling() {
  for (const t of state.timers) {
    if (typeof t === 'object' && t.stop) t.stop(); else clearTimeout(t);
  }
  state.timers = [];
}

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the request failed (HTTP ${status})`);
    this.status = status;
    this.details = Array.isArray(error.details) ? error.details : [];
    this.field = (this.details.find((d) => d.field) || {}).field || null;
  }
}

class SignedOut extends Error {}

async function api(method, path, body) {
  const headers = {};
  if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store', credentials: 'omit',
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 && state.session) {
    signOut('Your session has expired. Sign in again.');
    throw new SignedOut();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const instancesPath = () =>
  `/v1/regions/${encodeURIComponent(state.region)}/projects/${encodeURIComponent(state.session.project)}/compute/instances`;
const instancePath = (id) => `${instancesPath()}/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------
// Session

function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (session && session.token && session.expiresAt > Date.now()) return session;
  } catch { /* a damaged entry is no session */ }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

function saveSession() {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
}

function signOut(message) {
  stopPolling();
  state.session = null;
  sessionStorage.removeItem(SESSION_KEY);
  $('bar').hidden = true;
  signInPage(message);
}

/** Reads the region, its first zone and the projects once per sign-in or reload. */
async function loadContext() {
  const regions = await api('GET', '/v1/regions');
  const region = regions.regions[0];
  state.region = region.id;
  state.zone = lastSegment(region.zones[0]);
  $('region-name').textContent = `${region.displayName || region.id} · ${state.zone}`;
  const projects = await api('GET', '/v1/regions/global/projects?pageSize=500');
  state.projects = projects.projects;
  if (!state.projects.some((p) => p.id === state.session.project)) {
    state.session.project = state.projects.length ? state.projects[0].id : 'default';
    saveSession();
  }
  // Hosts are for the region's operators; everyone else is refused, and sees no link.
  try {
    await api('GET', hostsPath());
    $('hosts-link').hidden = false;
    $('servers-link').hidden = false;
  } catch (e) {
    if (e instanceof SignedOut) throw e;
    $('hosts-link').hidden = true;
    $('servers-link').hidden = true;
  }
  const picker = $('project-picker');
  picker.replaceChildren(...state.projects.map((p) =>
    h('option', { value: p.id, selected: p.id === state.session.project }, p.displayName ? `${p.displayName} (${p.id})` : p.id)));
  $('bar').hidden = false;
}

// ---------------------------------------------------------------------------------------
// Pages

function signInPage(message) {
  const error = h('p', { class: 'alert', role: 'alert', id: 'signin-error' });
  const key = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', required: true,
    spellcheck: 'false', 'aria-describedby': 'api-key-hint signin-error',
  });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'stack', 'aria-labelledby': 'signin-title' },
    h('div', { class: 'field' },
      h('label', { for: 'api-key' }, 'API key'),
      key,
      h('span', { class: 'hint', id: 'api-key-hint' },
        'Exchanged for an access token kept only in this tab. ',
        h('code', {}, 'stratus serve'), ' writes the administrator key to ', h('code', {}, 'DATA_DIR/admin-api-key'), '.')),
    error,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    key.removeAttribute('aria-invalid');
    submit.disabled = true;
    try {
      const token = await api('POST', '/v1/regions/global/auth/token', { grant_type: 'api_key', api_key: key.value.trim() });
      state.session = {
        token: token.access_token,
        expiresAt: Date.now() + token.expires_in * 1000,
        project: 'default',
      };
      saveSession();
      await loadContext();
      if (location.hash === '#/instances') route(); else location.hash = '#/instances';
    } catch (e) {
      state.session = null;
      sessionStorage.removeItem(SESSION_KEY);
      error.textContent = e.message;
      key.setAttribute('aria-invalid', 'true');
      key.focus();
    } finally {
      submit.disabled = false;
    }
  });
  show('Sign in', h('div', { class: 'signin' },
    h('div', { class: 'brand-big' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'Stratus'),
    h('div', { class: 'card' },
      h('h1', { id: 'signin-title' }, 'Sign in'),
      message ? h('p', { class: 'notice', role: 'status' }, message) : null,
      form)));
  key.focus();
}

function instancesPage(notice) {
  const tbody = h('tbody');
  const rows = new Map();
  const empty = h('div', { class: 'empty', hidden: true },
    h('p', {}, 'No instances in this project yet.'),
    h('a', { class: 'button', href: '#/create' }, 'Create an instance'));
  const table = h('div', { class: 'table-wrap' },
    h('table', { id: 'instances' },
      h('caption', { class: 'visually-hidden' }, 'Instances of the project; statuses update live'),
      h('thead', {}, h('tr', {},
        ['Name', 'Status', 'Type', 'Created', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody),
    empty);
  const updated = h('span', { class: 'muted', id: 'updated' });
  show('Instances',
    h('div', { class: 'page-head' },
      h('h1', {}, 'Instances'),
      h('span', { class: 'muted' }, `project ${state.session.project}`),
      h('span', { class: 'spacer' }),
      updated,
      h('a', { class: 'button', href: '#/create', id: 'create-link' }, 'Create instance')),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    table);
  let first = true;
  const render = (instances) => {
    const seen = new Set();
    for (const instance of instances) {
      seen.add(instance.id);
      const status = instance.lifecycle.status;
      let row = rows.get(instance.id);
      if (!row) {
        row = h('tr', { 'data-id': instance.id },
          h('td', { class: 'id' }, h('a', { href: `#/instances/${encodeURIComponent(instance.id)}` }, instance.id)),
          h('td', { class: 'status-cell' }),
          h('td', {}, lastSegment(instance.type)),
          h('td', {}, formatTime(instance.createdAt)),
          h('td', { class: 'message muted' }));
        rows.set(instance.id, row);
        tbody.append(row);
      }
      const cell = row.querySelector('.status-cell');
      const before = cell.textContent;
      if (before !== status) {
        cell.replaceChildren(statusPill(status));
        if (!first) announce(`${instance.id} is ${status}`);
      }
      row.querySelector('.message').textContent = instance.lifecycle.statusMessage || '';
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.remove();
        rows.delete(id);
        announce(`${id} was deleted`);
      }
    }
    placeInOrder(tbody, instances.map((instance) => rows.get(instance.id)));
    empty.hidden = instances.length > 0;
    table.querySelector('table').hidden = instances.length === 0;
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    first = false;
  };
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  watchInstances(instancesPath(), (instances) => render([...instances.values()].sort(byId)), (mark) => {
    updated.textContent = mark;
  });
}

/** Follows `?watch=true` on `collection`: keeps a map of the instances by id and calls
 * `onChange` with it once the first listing is in and after every change. A stream that ends
 * is reopened from its last version; an ERROR (too far behind) starts over with a listing;
 * a failure waits a little and starts over. Stops when the page changes. */
function watchInstances(collection, onChange, onStatus) {
  const controller = new AbortController();
  state.timers.push({ stop: () => controller.abort() });
  const instances = new Map();
  let version = null;
  const open = async () => {
    const query = version ? `&resourceVersion=${encodeURIComponent(version)}` : '';
    const response = await fetch(`${collection}?watch=true${query}`, {
      headers: { Authorization: `Bearer ${state.session.token}`, Accept: 'text/event-stream' },
      cache: 'no-store', credentials: 'omit', signal: controller.signal,
    });
    if (response.status === 401) { signOut('Your session has expired. Sign in again.'); return false; }
    if (!response.ok || !response.body) throw new Error(`the watch failed (HTTP ${response.status})`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let listing = version === null;
    const staged = listing ? new Map() : null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        const event = JSON.parse(data);
        if (event.type === 'ERROR') { version = null; return true; }
        if (event.resourceVersion && !(listing && event.type === 'ADDED')) version = event.resourceVersion;
        const target = listing ? staged : instances;
        if (event.type === 'ADDED' || event.type === 'MODIFIED') target.set(event.object.id, event.object);
        else if (event.type === 'DELETED') target.delete(lastSegment(event.selfLink));
        else if (event.type === 'BOOKMARK' && listing) {
          listing = false;
          version = event.resourceVersion;
          instances.clear();
          for (const [id, instance] of staged) instances.set(id, instance);
        }
        if (!listing) onChange(instances);
      }
    }
  };
  (async () => {
    while (!controller.signal.aborted) {
      try {
        if (!(await open())) return;
      } catch (e) {
        if (controller.signal.aborted) return;
        console.warn(e);
        onStatus('Reconnecting…');
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
  })();
}

/** The form fields of the create page, and which API field paths land on each. */
const CREATE_FIELDS = [
  { id: 'f-id', matches: (f) => f === 'id' || f === 'hostname' },
  { id: 'f-type', matches: (f) => f === 'type' },
  { id: 'f-image', matches: (f) => f.startsWith('disks') && !f.endsWith('sizeGb') },
  { id: 'f-disk', matches: (f) => f.endsWith('sizeGb') },
  { id: 'f-ssh', matches: (f, metadata) => metadataKeyAt(f, metadata) === 'ssh-keys' },
  { id: 'f-user-data', matches: (f, metadata) => metadataKeyAt(f, metadata) === 'user-data' },
  { id: 'f-labels', matches: (f) => f.startsWith('labels') },
];

function metadataKeyAt(field, metadata) {
  const match = /^instanceMetadata\[(\d+)\]/.exec(field);
  return match && metadata[Number(match[1])] ? metadata[Number(match[1])].key : null;
}

function field(id, label, control, hint) {
  control.id = id;
  const describedBy = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', describedBy);
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null,
    h('span', { class: 'error', id: `${id}-error` }));
}

async function createPage() {
  show('Create instance', h('p', { class: 'muted' }, 'Loading the catalog…'));
  const [types, images] = await Promise.all([
    api('GET', `/v1/regions/${encodeURIComponent(state.region)}/zones/${encodeURIComponent(state.zone)}/instance-types`),
    api('GET', `/v1/regions/${encodeURIComponent(state.region)}/compute/images`),
  ]);
  const typeSelect = h('select', { name: 'type', required: true },
    types.instanceTypes.map((t) => h('option', { value: t.selfLink, selected: t.id === 'e2-small' },
      `${t.id} — ${t.vcpus} vCPU, ${Math.round(t.memoryMb / 1024)} GB${t.gpus.length ? `, ${t.gpus.map((g) => `${g.count}× ${lastSegment(g.type)}`).join(', ')}` : ''}`)));
  const ready = images.images.filter((i) => i.status === 'READY');
  const imageSelect = h('select', { name: 'image' },
    ready.map((i, n) => h('option', { value: i.selfLink, selected: n === 0, 'data-min': i.minDiskGb }, `${i.id} (${i.os})`)),
    h('option', { value: '' }, 'No boot disk'));
  const diskHint = h('span', {});
  const describeDisk = () => {
    const chosen = imageSelect.selectedOptions[0];
    diskHint.textContent = chosen && chosen.value
      ? `Empty: the image's minimum, ${chosen.dataset.min} GB.`
      : 'Only with a boot image.';
  };
  imageSelect.addEventListener('change', describeDisk);
  describeDisk();
  const error = h('div', { class: 'alert', role: 'alert', id: 'create-error' });
  const submit = h('button', { type: 'submit' }, 'Create instance');
  const form = h('form', { class: 'stack card', novalidate: true, 'aria-labelledby': 'create-title' },
    field('f-id', 'Name', h('input', { name: 'id', autocomplete: 'off', spellcheck: 'false', placeholder: 'web-1' }),
      'Lowercase letters, digits and hyphens. Generated when empty.'),
    h('div', { class: 'row' },
      field('f-type', 'Instance type', typeSelect),
      field('f-image', 'Boot image', imageSelect)),
    field('f-disk', 'Boot disk size (GB)', h('input', { name: 'disk', type: 'number', inputmode: 'numeric', step: '1' }),
      diskHint),
    field('f-ssh', 'SSH public keys', h('textarea', { name: 'ssh', rows: 2, spellcheck: 'false', placeholder: 'alice:ssh-ed25519 AAAA… alice@laptop' }),
      'One per line as user:key; stored as the ssh-keys metadata entry.'),
    field('f-user-data', 'User data', h('textarea', { name: 'user-data', rows: 4, spellcheck: 'false', placeholder: '#cloud-config' }),
      'Given to the guest as user-data (cloud-init).'),
    field('f-labels', 'Labels', h('textarea', { name: 'labels', rows: 2, spellcheck: 'false', placeholder: 'tier=web' }),
      'One key=value per line.'),
    error,
    h('div', { class: 'form-actions' }, submit, h('a', { class: 'button quiet', href: '#/instances' }, 'Cancel')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitCreate(form, submit, error);
  });
  show('Create instance',
    h('div', { class: 'crumbs' }, h('a', { href: '#/instances' }, 'Instances'), ' / New'),
    h('div', { class: 'page-head' }, h('h1', { id: 'create-title' }, 'Create instance'),
      h('span', { class: 'muted' }, `in project ${state.session.project}, zone ${state.zone}`)),
    form);
}

function clearErrors(form, alert) {
  alert.textContent = '';
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
  for (const message of form.querySelectorAll('.field .error')) message.textContent = '';
}

function fieldError(id, message) {
  const control = $(id);
  control.setAttribute('aria-invalid', 'true');
  $(`${id}-error`).textContent = message;
  return control;
}

async function submitCreate(form, submit, alert) {
  clearErrors(form, alert);
  const value = (name) => form.elements[name].value.trim();
  const body = { type: value('type') };
  if (value('id')) body.id = value('id');
  if (value('image')) {
    const disk = { boot: true, source: value('image') };
    if (value('disk')) disk.sizeGb = Number(value('disk'));
    body.disks = [disk];
  }
  const metadata = [];
  if (value('ssh')) metadata.push({ key: 'ssh-keys', value: `${value('ssh')}\n` });
  if (form.elements['user-data'].value.trim()) metadata.push({ key: 'user-data', value: form.elements['user-data'].value });
  if (metadata.length) body.instanceMetadata = metadata;
  const labelLines = value('labels').split('\n').map((l) => l.trim()).filter(Boolean);
  if (labelLines.length) {
    body.labels = {};
    for (const line of labelLines) {
      const at = line.indexOf('=');
      if (at < 1) {
        fieldError('f-labels', `"${line}" is not key=value.`).focus();
        return;
      }
      body.labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
  }
  submit.disabled = true;
  submit.textContent = 'Creating…';
  try {
    const instance = await api('POST', instancesPath(), body);
    announce(`${instance.id} created`);
    location.hash = `#/instances/${encodeURIComponent(instance.id)}`;
  } catch (e) {
    if (e instanceof SignedOut) return;
    const target = e.field && CREATE_FIELDS.find((f) => f.matches(e.field, metadata));
    if (target) {
      fieldError(target.id, e.message).focus();
    } else {
      alert.textContent = e.message;
      alert.setAttribute('tabindex', '-1');
      alert.focus();
    }
  } finally {
    submit.disabled = false;
    submit.textContent = 'Create instance';
  }
}

/** What each action needs: the states it applies to, and how to confirm it. */
const ACTIONS = [
  { verb: 'start', label: 'Start', when: ['TERMINATED'], confirm: 'Start {id}? It boots again with its disks as they are.' },
  { verb: 'stop', label: 'Stop', when: ['RUNNING', 'STAGING', 'PROVISIONING', 'SUSPENDED', 'REPAIRING'], confirm: 'Stop {id}? The guest gets an ACPI power-off, then a hard stop.', danger: true },
  { verb: 'delete', label: 'Delete', when: null, confirm: 'Delete {id} and its disks? This cannot be undone.', danger: true },
];

function confirmAction(title, text, danger) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const ok = $('confirm-ok');
  ok.textContent = title.split(' ')[0];
  ok.className = danger ? 'danger' : '';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

function instancePage(id) {
  const status = h('span', { id: 'instance-status' });
  const message = h('span', { class: 'muted', id: 'instance-message' });
  const details = h('dl', { class: 'details' });
  const consoleOut = h('pre', { class: 'console', id: 'serial-console', role: 'log', tabindex: '0', 'aria-label': 'Serial console output' });
  const feedback = h('p', { class: 'alert', role: 'alert' });
  const buttons = ACTIONS.map((a) => h('button', {
    type: 'button', class: a.danger ? 'quiet' : '', 'data-verb': a.verb,
    onclick: () => runAction(a),
  }, a.label));
  let current = null;

  async function runAction(action) {
    const ok = await confirmAction(`${action.label} ${id}?`, action.confirm.replace('{id}', id), action.danger);
    if (!ok) return;
    feedback.textContent = '';
    try {
      if (action.verb === 'delete') {
        await api('DELETE', instancePath(id));
        instancesPageNotice = `${id} is being deleted.`;
        location.hash = '#/instances';
        return;
      }
      render(await api('POST', `${instancePath(id)}:${action.verb}`));
      announce(`${id}: ${action.label.toLowerCase()} requested`);
    } catch (e) {
      if (!(e instanceof SignedOut)) feedback.textContent = e.message;
    }
  }

  function render(instance) {
    const changed = !current || current.lifecycle.status !== instance.lifecycle.status;
    current = instance;
    if (changed) {
      status.replaceChildren(statusPill(instance.lifecycle.status));
      announce(`${id} is ${instance.lifecycle.status}`);
    }
    message.textContent = instance.lifecycle.statusMessage || '';
    const disks = instance.disks.map((d) =>
      `${d.boot ? 'boot, ' : ''}${d.sizeGb ?? '?'} GB${d.source ? ` from ${lastSegment(d.source)}` : ''}`).join('; ');
    const labels = Object.entries(instance.labels).map(([k, v]) => `${k}=${v}`).join(', ');
    const addresses = (instance.nics || []).map((n) =>
      `${n.ipv4Address || '?'} in ${n.network ? lastSegment(n.network) : '?'}${n.ipv6Address ? `, ${n.ipv6Address}` : ''}` +
      `${n.externalIpv4Address ? `, external ${n.externalIpv4Address}` : ''}`).join('; ');
    const rows = [
      ['Type', lastSegment(instance.type)],
      ['Hostname', instance.hostname],
      ['Addresses', addresses || '—'],
      ['Disks', disks || '—'],
      ['Labels', labels || '—'],
      ['Metadata', instance.instanceMetadata.map((m) => m.key).join(', ') || '—'],
      ['Created', formatTime(instance.createdAt)],
      ['Updated', formatTime(instance.updatedAt)],
      ['UID', instance.uid],
    ];
    details.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    for (const button of buttons) {
      const action = ACTIONS.find((a) => a.verb === button.dataset.verb);
      button.disabled = action.when !== null && !action.when.includes(instance.lifecycle.status);
    }
  }

  show(id,
    h('div', { class: 'crumbs' }, h('a', { href: '#/instances' }, 'Instances'), ` / ${id}`),
    h('div', { class: 'page-head' }, h('h1', {}, id), status, message,
      h('span', { class: 'spacer' }), h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, buttons)),
    feedback,
    h('div', { class: 'grid2' },
      h('section', { class: 'card', 'aria-labelledby': 'details-title' }, h('h2', { id: 'details-title' }, 'Details'), details),
      h('section', { class: 'card', 'aria-labelledby': 'console-title' }, h('h2', { id: 'console-title' }, 'Serial console'), consoleOut)));

  let next = 0;
  poll(async () => {
    try {
      render(await api('GET', instancePath(id)));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        instancesPageNotice = `${id} no longer exists.`;
        location.hash = '#/instances';
        return;
      }
      throw e;
    }
    const serial = await api('GET', `${instancePath(id)}/serialPortOutput?start=${next}`);
    if (serial.contents) {
      const atBottom = consoleOut.scrollTop + consoleOut.clientHeight >= consoleOut.scrollHeight - 4;
      if (serial.start > next) consoleOut.textContent = '';
      consoleOut.textContent += serial.contents;
      if (atBottom) consoleOut.scrollTop = consoleOut.scrollHeight;
    }
    next = serial.next;
  });
}

/** A table of `columns` whose rows poll from `load`, keyed by id, updated in place. */
function liveTable(label, columns, load, cells, emptyText) {
  const tbody = h('tbody');
  const rows = new Map();
  const table = h('table', {},
    h('caption', { class: 'visually-hidden' }, label),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const empty = h('div', { class: 'empty', hidden: true }, h('p', {}, emptyText));
  const refresh = async () => {
    const items = await load();
    const seen = new Set(items.map((item) => item.id));
    for (const [id, row] of rows) if (!seen.has(id)) { row.remove(); rows.delete(id); }
    for (const item of items) {
      const row = rows.get(item.id) || h('tr', { 'data-id': item.id });
      // Rebuild a row only when it changed, so keyboard focus inside it survives the polls.
      const signature = JSON.stringify(item);
      if (row.dataset.signature !== signature) {
        row.dataset.signature = signature;
        row.replaceChildren(...cells(item).map((cell) => h('td', {}, cell)));
      }
      rows.set(item.id, row);
    }
    placeInOrder(tbody, items.map((item) => rows.get(item.id)));
    table.hidden = items.length === 0;
    empty.hidden = items.length > 0;
  };
  return { element: h('div', { class: 'table-wrap' }, table, empty), refresh };
}

function imagesPage() {
  const images = liveTable('Images of the region; import progress updates live',
    ['Image', 'Status', 'OS', 'Format', 'Minimum disk', 'Message'],
    async () => (await api('GET', `/v1/regions/${encodeURIComponent(state.region)}/compute/images`)).images,
    (i) => [h('strong', {}, i.id), statusPill(i.status), i.os, i.format, `${i.minDiskGb} GB`, h('span', { class: 'muted' }, i.statusMessage || '')],
    'No images in this region.');
  show('Images',
    h('div', { class: 'page-head' }, h('h1', {}, 'Images'), h('span', { class: 'muted' }, `region ${state.region}`),
      h('span', { class: 'spacer' }), h('span', { class: 'muted' }, 'Administrators register images with ', h('code', {}, 'stratus images create'), '.')),
    images.element);
  poll(images.refresh);
}

const KEY_ROLES = { organization: ['member', 'admin', 'owner'], project: ['viewer', 'member', 'admin'] };

function apiKeysPage() {
  const alert = h('p', { class: 'alert', role: 'alert', id: 'key-error' });
  const reveal = h('div', { id: 'key-secret', 'aria-live': 'polite' });
  let keys = null;
  const remove = async (key) => {
    const ok = await confirmAction(`Delete ${key.id}?`, `Delete the API key ${key.displayName || key.id}? Tokens minted from it stop working at once.`, true);
    if (!ok) return;
    try {
      await api('DELETE', `/v1/regions/global/iam/apikeys/${encodeURIComponent(key.id)}`);
      announce(`API key ${key.id} deleted`);
      await keys.refresh();
    } catch (e) {
      if (!(e instanceof SignedOut)) alert.textContent = e.message;
    }
  };
  keys = liveTable('Your API keys',
    ['Key', 'Status', 'Scope', 'Roles', 'Name', 'Last used', ''],
    async () => (await api('GET', '/v1/regions/global/iam/apikeys?pageSize=500')).apiKeys,
    (k) => [h('code', {}, k.id), statusPill(k.status.toUpperCase()), `${k.scope} ${k.scopeId}`, k.roles.join(', '), k.displayName,
      k.lastUsedAt ? formatTime(k.lastUsedAt) : '—',
      h('button', { type: 'button', class: 'quiet', 'aria-label': `Delete API key ${k.displayName || k.id}`, onclick: () => remove(k) }, 'Delete')],
    'You have no API keys.');

  const scope = h('select', { name: 'scope' },
    h('option', { value: 'organization' }, 'Organization'),
    h('option', { value: 'project' }, `Project ${state.session.project}`));
  const role = h('select', { name: 'role' });
  const fillRoles = () => role.replaceChildren(...KEY_ROLES[scope.value].map((r) => h('option', { value: r }, r)));
  scope.addEventListener('change', fillRoles);
  fillRoles();
  const submit = h('button', { type: 'submit' }, 'Create key');
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-key-title' },
    h('h2', { id: 'new-key-title' }, 'New API key'),
    h('div', { class: 'inline-form' },
      field('k-name', 'Name', h('input', { name: 'name', autocomplete: 'off', placeholder: 'ci runner' })),
      field('k-scope', 'Acts on', scope),
      field('k-role', 'Role', role),
      h('div', { class: 'form-actions' }, submit)),
    h('p', { class: 'hint muted' }, 'A key never holds more than your own roles. Its secret is exchanged for 15-minute access tokens.'),
    alert, reveal);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alert.textContent = '';
    reveal.replaceChildren();
    submit.disabled = true;
    try {
      const body = { displayName: form.elements.name.value.trim(), scope: scope.value, roles: [role.value] };
      if (scope.value === 'project') body.scopeId = state.session.project;
      const key = await api('POST', '/v1/regions/global/iam/apikeys', body);
      const code = h('code', { id: 'new-secret' }, key.secret);
      reveal.replaceChildren(h('div', { class: 'notice' },
        h('p', {}, h('strong', {}, `API key ${key.id} created. `), 'Copy its secret now: it is not shown again.'),
        h('div', { class: 'secret' }, code,
          h('button', { type: 'button', class: 'quiet', onclick: () => navigator.clipboard?.writeText(key.secret).then(() => announce('Secret copied')) }, 'Copy'))));
      form.elements.name.value = '';
      await keys.refresh();
      code.setAttribute('tabindex', '-1');
      code.focus();
    } catch (e) {
      if (e instanceof SignedOut) return;
      alert.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  show('API keys',
    h('div', { class: 'page-head' }, h('h1', {}, 'API keys'),
      h('span', { class: 'muted' }, 'Long-lived credentials for scripts and the CLI; each is exchanged for short tokens.')),
    form,
    h('div', { class: 'gap' }),
    keys.element);
  poll(keys.refresh);
}

function hostsPath() {
  return `/v1/regions/${encodeURIComponent(state.region)}/zones/${encodeURIComponent(state.zone)}/hosts`;
}

const SCHEDULING_ACTIONS = {
  SCHEDULABLE: [['cordon', 'Cordon'], ['drain', 'Drain']],
  CORDONED: [['uncordon', 'Uncordon'], ['drain', 'Drain']],
  DRAINING: [['uncordon', 'Uncordon']],
  DRAINED: [['uncordon', 'Uncordon']],
};

function hostsPage() {
  const alert = h('p', { class: 'alert', role: 'alert', id: 'host-error' });
  let hosts = null;
  const act = async (host, action) => {
    alert.textContent = '';
    try {
      const after = await api('POST', `${hostsPath()}/${encodeURIComponent(host.id)}:${action}`);
      const left = (after.instances || []).map((i) => `${i.project}/${i.id}`);
      announce(`Host ${host.id} is ${after.scheduling.toLowerCase()}` +
        (after.scheduling === 'DRAINING' ? `; still on it: ${left.join(', ')}` : ''));
      await hosts.refresh();
    } catch (e) {
      if (!(e instanceof SignedOut)) alert.textContent = e.message;
    }
  };
  const use = (allocated, capacity, unit) => h('span', { class: 'nowrap' }, `${allocated} / ${capacity}${unit}`);
  hosts = liveTable(`Hosts of zone ${state.zone}`,
    ['Host', 'Status', 'Scheduling', 'Driver', 'vCPUs', 'Memory', 'Instances', 'Heartbeat', ''],
    async () => (await api('GET', hostsPath())).hosts,
    (host) => [h('strong', {}, host.id), statusPill(host.status), statusPill(host.scheduling),
      host.accelerator ? `${host.driver} (${host.accelerator})` : host.driver,
      use(host.allocated.vcpus, host.capacity.vcpus, ''),
      use(Math.ceil(host.allocated.memoryMb / 1024), Math.floor(host.capacity.memoryMb / 1024), ' GiB'),
      String(host.instanceCount), h('time', { class: 'nowrap', datetime: host.lastHeartbeatAt, title: formatTime(host.lastHeartbeatAt) }, new Date(host.lastHeartbeatAt).toLocaleTimeString()),
      h('span', { class: 'row-actions' }, (SCHEDULING_ACTIONS[host.scheduling] || []).map(([action, label]) =>
        h('button', { type: 'button', class: 'quiet', 'aria-label': `${label} host ${host.id}`, onclick: () => act(host, action) }, label)))],
    'No host has registered in this zone.');
  show('Hosts',
    h('div', { class: 'page-head' }, h('h1', {}, 'Hosts'), h('span', { class: 'muted' }, `zone ${state.zone}`),
      h('span', { class: 'spacer' }), h('span', { class: 'muted' }, 'Cordoned and draining hosts take no new instances.')),
    alert,
    hosts.element);
  poll(hosts.refresh);
}

function serversPath() {
  return `/v1/regions/${encodeURIComponent(state.region)}/projects/${encodeURIComponent(state.session.project)}/infrastructure/servers`;
}

// What an operator can do to a server in each provisioning state (one holding an instance
// is powered through the instance).
const SERVER_ACTIONS = {
  registered: [['provision', 'Provision'], ['validate', 'Validate']],
  failed: [['provision', 'Provision'], ['validate', 'Validate']],
  ready: [['powerOn', 'Power on'], ['powerOff', 'Power off'], ['validate', 'Validate']],
};

function serversPage() {
  const alert = h('p', { class: 'alert', role: 'alert', id: 'server-error' });
  let servers = null;
  const act = async (server, action) => {
    alert.textContent = '';
    try {
      const body = action === 'provision' ? {} : undefined;
      const after = await api('POST', `${serversPath()}/${encodeURIComponent(server.id)}:${action}`, body);
      if (action === 'validate') {
        announce(after.valid ? `Server ${server.id} can be deployed` : `Server ${server.id}: ${after.errors.join('; ')}`);
      } else if (action === 'provision') {
        announce(`Server ${server.id}: provisioning ${after.status}`);
      } else {
        announce(`Server ${server.id} is powered ${(after.powerState || '').toLowerCase()}`);
      }
      await servers.refresh();
    } catch (e) {
      if (!(e instanceof SignedOut)) alert.textContent = e.message;
    }
  };
  const hardware = (specs) => `${specs.cpu.count} CPU · ${specs.ram.sizeGib.toFixed(1)} GiB`;
  servers = liveTable(`Bare-metal servers of project ${state.session.project}`,
    ['Server', 'State', 'Health', 'Power', 'Hardware', 'Instance', 'Message', ''],
    async () => (await api('GET', serversPath())).servers,
    (server) => [h('strong', {}, server.id), statusPill(server.provisioningState.toUpperCase()),
      statusPill(server.healthStatus.status.toUpperCase()), server.powerState || '',
      hardware(server.hardwareSpecs), server.instance ? lastSegment(server.instance) : '',
      h('span', { class: 'muted' }, server.statusMessage || ''),
      h('span', { class: 'row-actions' }, (server.instance ? [] : SERVER_ACTIONS[server.provisioningState] || []).map(([action, label]) =>
        h('button', { type: 'button', class: 'quiet', 'aria-label': `${label} server ${server.id}`, onclick: () => act(server, action) }, label)))],
    'No server is registered in this project.');
  show('Servers',
    h('div', { class: 'page-head' }, h('h1', {}, 'Bare-metal servers'), h('span', { class: 'muted' }, `project ${state.session.project}`),
      h('span', { class: 'spacer' }), h('span', { class: 'muted' }, 'Ready servers take one bare-metal instance each.')),
    alert,
    servers.element);
  poll(servers.refresh);
}

// ---------------------------------------------------------------------------------------
// Routing

let instancesPageNotice = null;

function route() {
  if (!state.session) {
    signInPage();
    return;
  }
  const hash = location.hash || '#/instances';
  const match = /^#\/instances\/([^/]+)$/.exec(hash);
  const failed = (e) => {
    if (e instanceof SignedOut) return;
    show('Error', h('h1', {}, 'Something went wrong'), h('p', { class: 'alert', role: 'alert' }, e.message),
      h('a', { href: '#/instances' }, 'Back to instances'));
  };
  if (match) {
    instancePage(decodeURIComponent(match[1]));
  } else if (hash === '#/create') {
    createPage().catch(failed);
  } else if (hash === '#/images') {
    imagesPage();
  } else if (hash === '#/api-keys') {
    apiKeysPage();
  } else if (hash === '#/hosts') {
    hostsPage();
  } else if (hash === '#/servers') {
    serversPage();
  } else {
    const notice = instancesPageNotice;
    instancesPageNotice = null;
    instancesPage(notice);
  }
}

async function start() {
  $('sign-out').addEventListener('click', () => signOut('You are signed out.'));
  $('project-picker').addEventListener('change', (event) => {
    state.session.project = event.target.value;
    saveSession();
    if (location.hash === '#/instances') route(); else location.hash = '#/instances';
  });
  window.addEventListener('hashchange', route);
  state.session = loadSession();
  if (state.session) {
    try {
      await loadContext();
    } catch (e) {
      if (!(e instanceof SignedOut)) signOut(e.message);
      return;
    }
  }
  route();
}

document.addEventListener('DOMContentLoaded', start);
