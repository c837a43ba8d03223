// The Stratus console in headless Chromium, as a person uses it: sign in with the API key,
// create an instance (first with a disk size the API refuses, shown next to the field), watch it
// reach RUNNING, stop and start it, delete it. Each page is saved as a screenshot in
// target/browser-artifacts/. `stratus serve` runs with the simulated host, so the whole flow
// takes seconds; every request the page makes must stay on the region's own origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.STRATUS_BIN || path.join(root, 'target/debug/stratus');
const artifacts = process.env.STRATUS_BROWSER_ARTIFACTS || path.join(root, 'target/browser-artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const WITHIN = 15_000;

let dir;
let serve;
let origin;
let apiKey;
let context;
const requested = [];
let page;
const offOrigin = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'stratus-browser-'));
  await mkdir(artifacts, { recursive: true });
  const config = path.join(dir, 'stratus.toml');
  await writeFile(config, '[host]\ndriver = "sim"\n\n[sim]\nprepare-ms = 400\nboot-ms = 600\nstop-ms = 300\n');
  serve = spawn(binary, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--config', config], {
    env: { ...process.env, STRATUS_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  origin = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: serve.stdout });
    lines.on('line', (line) => {
      const at = line.indexOf('serving on ');
      if (at >= 0) resolve(line.slice(at + 'serving on '.length).trim());
    });
    serve.on('exit', (code) => reject(new Error(`stratus serve exited with ${code}`)));
  });
  apiKey = (await readFile(path.join(dir, 'data', 'admin-api-key'), 'utf8')).trim();
  context = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  // Nothing but the region itself may be fetched.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    offOrigin.push(url);
    return route.abort();
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('request', (request) => request.method() === 'GET' && requested.push(request.url()));
  page.setDefaultTimeout(WITHIN);
});

after(async () => {
  await context?.close();
  serve?.kill('SIGTERM');
  await new Promise((resolve) => (serve && serve.exitCode === null ? serve.on('exit', resolve) : resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

/** Calls the API from the test itself, for setup the flow does not cover. */
async function api(method, apiPath, body) {
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('stratus.session')).token);
  const response = await fetch(`${origin}${apiPath}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${apiPath}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

/** Every form control of the page has a label, and every button and link a name. */
async function assertLabelled(where) {
  const unlabelled = await page.evaluate(() => [
    ...[...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !el.closest('[hidden]') && el.labels.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => `${el.tagName.toLowerCase()}#${el.id}`),
    ...[...document.querySelectorAll('button, a[href]')]
      .filter((el) => !el.textContent.trim() && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML),
  ]);
  assert.deepEqual(unlabelled, [], `unlabelled controls on ${where}`);
}

const statusOf = (id) => page.locator(`tr[data-id="${id}"] .status`);

test('sign in, create an instance, watch it run, stop, start and delete it', async () => {
  try {
    await consoleFlow();
  } catch (e) {
    // A failure explains itself: the page as it was, and the instances as the API has them.
    await shot('zz-failure').catch(() => {});
    const instances = await api('GET', '/v1/regions/local-1/projects/default/compute/instances').catch((x) => x);
    console.log(`at the failure the page showed ${page.url()}; the API lists ${JSON.stringify(instances, null, 1)}`);
    throw e;
  }
});

async function consoleFlow() {
  const started = Date.now();
  await page.goto(`${origin}/console`);

  // Sign in: the key field has focus; a wrong key is refused in words.
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'api-key');
  await page.getByLabel('API key').fill('not-a-key');
  await page.keyboard.press('Enter');
  await page.locator('#signin-error').filter({ hasText: /./ }).waitFor();
  assert.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true');
  await assertLabelled('sign-in');
  await shot('01-sign-in-refused');
  await page.getByLabel('API key').fill(apiKey);
  await page.keyboard.press('Enter');

  // The empty project: the token is in sessionStorage, never in the URL.
  await page.getByRole('heading', { name: 'Instances' }).waitFor();
  await page.getByText('No instances in this project yet.').waitFor();
  assert.ok(!page.url().includes('ey'), `no token in ${page.url()}`);
  const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('stratus.session')));
  assert.match(session.token, /^ey/);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.equal(await page.getByLabel('Project').inputValue(), 'default');
  await assertLabelled('instances');
  await shot('02-instances-empty');

  // A neighbour made through the API, stopped, so the list shows more than one state.
  await api('POST', '/v1/regions/local-1/projects/default/compute/instances', {
    id: 'db-1', type: '/v1/regions/local-1/zones/local-1a/instance-types/e2-standard-4', labels: { tier: 'db' },
  });

  // Create: the API's validation error appears next to the field it names.
  await page.getByRole('link', { name: 'Create instance' }).first().click();
  await page.getByRole('heading', { name: 'Create instance' }).waitFor();
  await page.getByLabel('Name').fill('web-1');
  await page.getByLabel('Instance type').selectOption({ label: 'e2-small — 2 vCPU, 2 GB' });
  await page.getByLabel('Boot disk size (GB)').fill('999999');
  await page.getByLabel('SSH public keys').fill('alice:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA alice@laptop');
  await page.getByLabel('User data').fill('#cloud-config\nhostname: web-1\n');
  await page.getByLabel('Labels').fill('tier=web\nenv=dev');
  await page.getByRole('button', { name: 'Create instance' }).click();
  const diskError = page.locator('#f-disk-error');
  await diskError.filter({ hasText: /sizeGb/ }).waitFor();
  assert.equal(await page.getByLabel('Boot disk size (GB)').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-disk', 'focus moves to the field at fault');
  await assertLabelled('create');
  await shot('03-create-validation-error');

  await page.getByLabel('Boot disk size (GB)').fill('2');
  await page.getByRole('button', { name: 'Create instance' }).click();

  // The instance page follows the lifecycle to RUNNING and shows the serial console.
  await page.getByRole('heading', { name: 'web-1' }).waitFor();
  const createdAt = Date.now();
  await page.locator('#instance-status .status[data-status="RUNNING"]').waitFor();
  const toRunning = Date.now() - createdAt;
  await page.locator('#serial-console').filter({ hasText: /ssh key/ }).waitFor();
  const details = await page.locator('dl.details').innerText();
  assert.match(details, /e2-small/);
  assert.match(details, /env=dev, tier=web/);
  assert.match(details, /ssh-keys, user-data/);
  assert.match(details, /10\.0\.0\.\d+ in default/, 'the instance page shows its address');
  await assertLabelled('instance');
  await shot('04-instance-running');

  // The list: both instances, statuses live.
  await page.getByRole('link', { name: 'Instances' }).first().click();
  await statusOf('web-1').filter({ hasText: 'RUNNING' }).waitFor();
  await api('POST', '/v1/regions/local-1/projects/default/compute/instances/db-1:stop');
  await statusOf('db-1').filter({ hasText: 'TERMINATED' }).waitFor();
  await shot('05-instances');
  // The table follows a watch of the project; it never polls the list.
  const lists = requested.filter((url) => new URL(url).pathname.endsWith('/compute/instances'));
  assert.ok(lists.some((url) => url.includes('watch=true')), `no watch among ${lists}`);
  assert.ok(lists.every((url) => url.includes('watch=true')), `the list was polled: ${lists}`);

  // Stop and start, each confirmed in a dialog; Escape cancels.
  // By keyboard alone: open the instance, and confirm the stop with Tab and Enter.
  await page.getByRole('link', { name: 'web-1' }).focus();
  await page.waitForTimeout(2500); // the table updates in place; focus must stay
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'web-1', 'focus survives the refresh');
  await page.keyboard.press('Enter');
  await page.locator('#instance-status .status[data-status="RUNNING"]').waitFor();
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.getByRole('dialog').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel', 'Cancel has focus');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  await page.getByRole('button', { name: 'Stop' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-ok');
  await page.keyboard.press('Enter');
  await page.locator('#instance-status .status[data-status="TERMINATED"]').waitFor();
  await page.getByRole('button', { name: 'Start' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Start' }).click();
  await page.locator('#instance-status .status[data-status="RUNNING"]').waitFor();

  // Delete, confirmed; the list shows it going and then gone.
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').waitFor();
  await shot('06-delete-confirmation');
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('heading', { name: 'Instances' }).waitFor();
  await page.getByText('web-1 is being deleted.').waitFor();
  await page.locator('tr[data-id="web-1"]').waitFor({ state: 'detached' });
  await shot('07-instance-deleted');

  // Images: the catalog's image, READY.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Images' }).click();
  await page.getByRole('heading', { name: 'Images' }).waitFor();
  await page.locator('tr[data-id="stratus-guest"] .status[data-status="READY"]').waitFor();
  await assertLabelled('images');
  await shot('08-images');

  // API keys: create one, its secret shown once; then delete it, confirmed.
  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByLabel('Name').fill('ci runner');
  await page.getByLabel('Role').selectOption('member');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = await page.locator('#new-secret').innerText();
  assert.ok(secret.length > 20, `a secret: ${secret}`);
  const row = page.locator('tbody tr', { hasText: 'ci runner' });
  await row.waitFor();
  await assertLabelled('api-keys');
  await shot('09-api-key-created');
  const minted = await fetch(`${origin}/v1/regions/global/auth/token`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ grant_type: 'api_key', api_key: secret }),
  });
  assert.equal(minted.status, 200, 'the new key signs in');
  await row.getByRole('button', { name: /Delete API key/ }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });

  // Hosts (the operator's): the local host, cordoned and uncordoned from its row.
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Hosts' }).click();
  await page.getByRole('heading', { name: 'Hosts' }).waitFor();
  const host = page.locator('tr[data-id="local"]');
  await host.locator('.status[data-status="UP"]').waitFor();
  await host.getByRole('button', { name: 'Cordon host local' }).click();
  await host.locator('.status[data-status="CORDONED"]').waitFor();
  await assertLabelled('hosts');
  await shot('10-hosts-cordoned');
  await host.getByRole('button', { name: 'Uncordon host local' }).click();
  await host.locator('.status[data-status="SCHEDULABLE"]').waitFor();

  // Signing out forgets the token.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('stratus.session')), null);

  assert.deepEqual(offOrigin, [], 'the console fetched nothing outside its region');
  console.log(`console flow: ${Date.now() - started} ms; web-1 RUNNING ${toRunning} ms after its page opened`);
}
