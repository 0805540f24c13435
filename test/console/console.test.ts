import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { hashApiKey } from '@facegate/gateway';
import { getJson } from '../support/http.js';
import { fixture, repoRoot } from '../support/paths.js';
import { startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';

const CHROMIUM = '/usr/bin/chromium';
const skipWithoutChromium = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found (Debian package chromium; setup --test installs it)`;

/** Screenshots go to docs/console only when asked for (UPDATE_SCREENSHOTS=1), so test runs leave the tree alone. */
const screenshotDir = process.env['UPDATE_SCREENSHOTS'] === '1' ? path.join(repoRoot, 'docs', 'console') : undefined;

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('web console in headless Chromium', { skip: skipWithoutChromium }, () => {
  let service: RunningService;
  let context: BrowserContext;
  let page: Page;
  let profile: string;

  async function screenshot(name: string): Promise<void> {
    if (screenshotDir) await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
  }

  async function open(screen: string): Promise<void> {
    await page.click(`nav a[href="#${screen}"]`);
    await page.waitForSelector(`#${screen}.active`);
  }

  const outcome = (screen: string) => page.locator(`#${screen} .result .outcome`);

  before(async () => {
    service = await startEmbeddedService();
    profile = temporaryDirectory('chromium');
    if (screenshotDir) mkdirSync(screenshotDir, { recursive: true });
    // A persistent context is how Playwright takes a user-data-dir of our choosing (fresh here).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1100, height: 800 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${service.baseUrl}/`);
  });
  after(async () => {
    await context?.close();
    await service?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('enrols a dropped photo and shows the face box, quality and PAD scores', async () => {
    await page.waitForSelector('#enrol.active');
    // Drag and drop: a DataTransfer carrying the photo, dropped on the enrol drop zone.
    const photo = readFileSync(fixture('frll', '001_neutral.jpg')).toString('base64');
    // Evaluated in the page (the tests' TypeScript has no DOM types): a DataTransfer holding the photo.
    const dataTransfer = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob('${photo}'), (character) => character.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], '001_neutral.jpg', { type: 'image/jpeg' }));
      return transfer;
    })()`);
    await page.dispatchEvent('#enrol .drop', 'drop', { dataTransfer });
    await page.fill('#enrol input[name=subject_id]', 'alice');
    await page.click('#enrol button[type=submit]');
    await outcome('enrol').waitFor();
    assert.equal(await outcome('enrol').textContent(), 'Enrolled alice');
    const box = page.locator('#enrol [data-testid=face-box]');
    await box.waitFor();
    const size = await box.boundingBox();
    assert.ok(size && size.width > 20 && size.height > 20, `the face box is drawn (${JSON.stringify(size)})`);
    const terms = await page.locator('#enrol dt').allTextContents();
    assert.ok(terms.includes('Quality score') && terms.includes('PAD score (live)'), terms.join(', '));
    await screenshot('enrol');
  });

  it('explains a refusal in words', async () => {
    await page.setInputFiles('#enrol input[type=file]', fixture('frll', 'two_faces.jpg'));
    await page.fill('#enrol input[name=subject_id]', 'two');
    await page.click('#enrol button[type=submit]');
    await page.locator('#enrol .outcome.bad').waitFor();
    assert.equal(await outcome('enrol').textContent(), 'Refused: MULTIPLE_FACES');
    assert.match((await page.locator('#enrol .reason').textContent()) ?? '', /More than one face/);
    await screenshot('enrol-refused');
  });

  it('searches and lists the enrolled subject with its score', async () => {
    await open('search');
    await page.setInputFiles('#search input[type=file]', fixture('frll', '001_smiling.jpg'));
    await page.click('#search button[type=submit]');
    await page.locator('#search table').waitFor();
    const row = page.locator('#search table tr').nth(1);
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], '1');
    assert.equal(cells[1], 'alice');
    assert.ok(Number(cells[2]) >= 0.45, `score ${cells[2]}`);
    await screenshot('search');
  });

  it('verifies the subject', async () => {
    await open('verify');
    await page.setInputFiles('#verify input[type=file]', fixture('frll', '001_smiling.jpg'));
    await page.fill('#verify input[name=subject_id]', 'alice');
    await page.click('#verify button[type=submit]');
    await outcome('verify').waitFor();
    assert.equal(await outcome('verify').textContent(), 'Match: alice');
    await screenshot('verify');
  });

  it('shows partitions with counts, and health with key metrics', async () => {
    await open('partitions');
    await page.locator('#partitions table').waitFor();
    assert.deepEqual(await page.locator('#partitions table tr').nth(1).locator('td').allTextContents(), [
      'default',
      '1',
    ]);
    await screenshot('partitions');
    await open('health');
    await page.locator('#health h3').waitFor();
    assert.equal(await outcome('health').textContent(), 'Service healthy');
    assert.ok(
      (await page.locator('#health dt').allTextContents()).includes('Requests served'),
      "(await page.locator('#health dt').allTextContents()).includes('Requests served')",
    );
    await screenshot('health');
  });

  it('deletes the subject', async () => {
    await open('delete');
    await page.fill('#delete input[name=subject_id]', 'alice');
    await page.click('#delete button[type=submit]');
    await outcome('delete').waitFor();
    assert.equal(await outcome('delete').textContent(), 'Deleted alice');
    const { body } = await getJson(service.baseUrl, '/api/v1/stats');
    assert.equal(body['total_subjects'], 0);
    await screenshot('delete');
  });

  it('uses the API key typed in the page where the service asks for keys', async () => {
    const keysDir = temporaryDirectory('console-keys');
    const keysFile = path.join(keysDir, 'keys.json');
    const adminKey = 'console-admin-test-key';
    writeFileSync(
      keysFile,
      JSON.stringify({ keys: [{ id: 'ops', sha256: hashApiKey(adminKey), scopes: ['admin'], partitions: ['*'] }] }),
    );
    const keyed = await startEmbeddedService({ API_KEYS_FILE: keysFile });
    const keyedPage = await context.newPage();
    try {
      await keyedPage.goto(`${keyed.baseUrl}/#partitions`);
      const result = keyedPage.locator('#partitions .result');
      await result.locator('.outcome').waitFor();
      assert.equal(await result.locator('.outcome').textContent(), 'Refused: UNAUTHORIZED');
      assert.match((await result.locator('.reason').textContent()) ?? '', /API key is needed/);
      await keyedPage.fill('#api-key', adminKey);
      await keyedPage.click('[data-refresh=partitions]');
      await result.locator('.outcome.ok').waitFor();
      assert.equal(await result.locator('.outcome').textContent(), '0 subject(s) in 0 partition(s)');
    } finally {
      await keyedPage.close();
      await keyed.close();
      rmSync(keysDir, { recursive: true, force: true });
    }
  });

  it('is usable with the keyboard and at 200 % zoom', async () => {
    await page.goto(`${service.baseUrl}/#enrol`);
    await page.reload();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate("document.activeElement?.getAttribute('href')"), '#search');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#search.active');
    // 200 % zoom of a 1100 px window: half the CSS pixels, each drawn twice as large.
    const zoomed = await context.newPage();
    try {
      await zoomed.setViewportSize({ width: 550, height: 400 });
      await zoomed.goto(`${service.baseUrl}/#verify`);
      await zoomed.waitForSelector('#verify.active');
      const overflow = Number(
        await zoomed.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'),
      );
      assert.ok(overflow <= 0, `no horizontal scrolling at 200 % (overflow ${overflow}px)`);
      if (screenshotDir) await zoomed.screenshot({ path: path.join(screenshotDir, 'zoom-200.png'), fullPage: true });
    } finally {
      await zoomed.close();
    }
  });
});
