// The facegate web console: plain browser JavaScript calling the API on the same origin.
const KEY_STORAGE = 'facegate.apiKey';

/** What each refusal means for the person at the camera. */
const REASONS = {
  NO_FACE: 'No face was found in the photo.',
  IMAGE_DECODE_FAILED: 'The file is not a readable JPEG or PNG image.',
  MULTIPLE_FACES: 'More than one face is in the photo; enrolment needs exactly one.',
  INVALID_REQUEST: 'Some field is missing or not allowed.',
  UNAUTHORIZED: 'An API key is needed: enter it at the top of the page.',
  FORBIDDEN: 'This API key may not do this, or not in this partition.',
  SUBJECT_NOT_FOUND: 'No subject with this id is in the partition.',
  PARTITION_NOT_FOUND: 'The partition does not exist yet (enrol someone to create it).',
  SUBJECT_EXISTS: 'A subject with this id is already enrolled in the partition.',
  PAYLOAD_TOO_LARGE: 'The photo is too large.',
  UNSUPPORTED_MEDIA_TYPE: 'The request had the wrong content type.',
  QUALITY_REJECTED: 'The face image quality is too low (blur, light, pose or size).',
  OVERLOADED: 'The service is busy; try again in a moment.',
  PAD_REJECTED: 'The photo looks like a presentation attack (a printed or on-screen face).',
  MAD_REJECTED: 'The photo looks like a morph of several faces.',
  UNAVAILABLE: 'A part of the service is down; try again later.',
  INTERNAL_ERROR: 'The service failed unexpectedly.',
};

const keyInput = document.getElementById('api-key');
keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? '';
keyInput.addEventListener('change', () => sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim()));

function apiHeaders(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, 'X-API-Key': key } : extra;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function definitions(pairs) {
  const list = el('dl');
  for (const [term, value] of pairs)
    if (value !== null && value !== undefined) list.append(el('dt', {}, term), el('dd', {}, value));
  return list;
}

function textOf(xml, name) {
  return xml.getElementsByTagName(name)[0]?.textContent ?? null;
}

// --- calibration: what a score means, when the service publishes FMR/FNMR per threshold.
let calibrationRequest;
function calibrations() {
  calibrationRequest ??= fetch('/api/v1/calibration', { headers: apiHeaders() })
    .then((response) => (response.ok ? response.json() : null))
    .catch(() => null);
  return calibrationRequest;
}

function tableFor(body, modelId) {
  const all = body?.calibrations ?? body;
  if (!all) return null;
  const tables = Array.isArray(all) ? all : Object.entries(all).map(([id, table]) => ({ model_id: id, ...table }));
  return tables.find((table) => table.model_id === modelId)?.thresholds ?? null;
}

function percent(rate) {
  return rate === 0 ? '0 %' : `${(rate * 100).toPrecision(2)} %`;
}

async function meaning(score, modelId) {
  const points = tableFor(await calibrations(), modelId);
  if (!points?.length) return null;
  const point = [...points].reverse().find((candidate) => candidate.threshold <= score) ?? points[0];
  return `at threshold ${point.threshold}: false match rate ${percent(point.fmr)}, false non-match rate ${percent(point.fnmr)}`;
}

// --- rendering of XML answers.
function photoWithBox(file, xml) {
  const figure = el('div', { class: 'figure' });
  const image = el('img', { alt: 'the photo sent' });
  image.src = URL.createObjectURL(file);
  figure.append(image);
  const box = xml.getElementsByTagName('face_box')[0];
  if (box) {
    image.addEventListener('load', () => {
      const scale = image.clientWidth / image.naturalWidth;
      const frame = el('div', {
        class: 'face-box',
        'data-testid': 'face-box',
        role: 'img',
        'aria-label': 'detected face',
      });
      for (const [side, css] of [
        ['x', 'left'],
        ['y', 'top'],
        ['width', 'width'],
        ['height', 'height'],
      ]) {
        frame.style[css] = `${Number(textOf(box, side)) * scale}px`;
      }
      figure.append(frame);
    });
  }
  return figure;
}

/** A refusal's code in words, with its message and the gate score that failed; `field` reads the body. */
function refusal(status, field) {
  return [
    el('p', { class: 'outcome bad' }, `Refused: ${status}`),
    el('p', { class: 'reason' }, REASONS[status] ?? 'The request failed.'),
    definitions([
      ['Message', field('message')],
      ['Quality score', field('quality_score')],
      ['PAD score', field('pad_score')],
      ['Morph score', field('mad_score')],
    ]),
  ];
}

function scores(xml) {
  return [
    ['Quality score', textOf(xml, 'quality_score')],
    ['PAD score (live)', textOf(xml, 'pad_score')],
    ['Model', textOf(xml, 'model_id')],
  ];
}

const RENDERERS = {
  async enrol(xml) {
    return [el('p', { class: 'outcome ok' }, `Enrolled ${textOf(xml, 'subject_id')}`), definitions(scores(xml))];
  },
  async search(xml) {
    const modelId = textOf(xml, 'model_id');
    const candidates = [...xml.getElementsByTagName('candidate')];
    const meanings = await Promise.all(
      candidates.map((candidate) => meaning(Number(textOf(candidate, 'score')), modelId)),
    );
    // The meaning column only where the service publishes a calibration table.
    const calibrated = meanings.some((text) => text !== null);
    const headings = ['Rank', 'Subject', 'Score', ...(calibrated ? ['What the score means'] : [])];
    const table = el('table', {}, el('tr', {}, ...headings.map((heading) => el('th', {}, heading))));
    candidates.forEach((candidate, index) => {
      const cells = ['rank', 'subject_id', 'score'].map((name) => el('td', {}, textOf(candidate, name)));
      if (calibrated) cells.push(el('td', { class: 'meaning' }, meanings[index] ?? '—'));
      table.append(el('tr', {}, ...cells));
    });
    const summary = candidates.length ? `${candidates.length} candidate(s)` : 'No candidate above the threshold';
    return [el('p', { class: 'outcome ok' }, summary), table, definitions(scores(xml))];
  },
  async verify(xml) {
    const match = textOf(xml, 'match') === 'true';
    const score = textOf(xml, 'score');
    return [
      el(
        'p',
        { class: `outcome ${match ? 'ok' : 'bad'}` },
        match ? `Match: ${textOf(xml, 'subject_id')}` : `No match: ${textOf(xml, 'subject_id')}`,
      ),
      definitions([
        ['Score', score],
        ['What the score means', await meaning(Number(score), textOf(xml, 'model_id'))],
        ...scores(xml),
      ]),
    ];
  },
  async delete(xml) {
    return [el('p', { class: 'outcome ok' }, `Deleted ${textOf(xml, 'subject_id')}`)];
  },
};

function metadataOf(form, endpoint) {
  const data = new FormData(form);
  const metadata = {};
  for (const name of ['subject_id', 'partition']) if (data.get(name)) metadata[name] = String(data.get(name));
  if (endpoint === 'search' && data.get('top_k')) metadata.top_k = Number(data.get('top_k'));
  if (data.get('threshold')) metadata.threshold = Number(data.get('threshold'));
  return metadata;
}

async function submit(form) {
  const endpoint = form.dataset.endpoint;
  const result = form.parentElement.querySelector('.result');
  result.replaceChildren(el('p', {}, 'Working…'));
  const metadata = metadataOf(form, endpoint);
  const file = form.elements.image?.files[0];
  let request;
  if (endpoint === 'delete') {
    request = {
      method: 'POST',
      headers: apiHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(metadata),
    };
  } else {
    const body = new FormData();
    body.append('image', file);
    body.append('metadata', JSON.stringify(metadata));
    request = { method: 'POST', headers: apiHeaders(), body };
  }
  try {
    const response = await fetch(`/api/v1/${endpoint}`, request);
    const xml = new DOMParser().parseFromString(await response.text(), 'application/xml');
    const status = textOf(xml, 'status') ?? `HTTP ${response.status}`;
    const parts = status === 'OK' ? await RENDERERS[endpoint](xml) : refusal(status, (name) => textOf(xml, name));
    const shown = file ? [el('div', { class: 'columns' }, photoWithBox(file, xml), el('div', {}, ...parts))] : parts;
    result.replaceChildren(...shown);
  } catch (error) {
    result.replaceChildren(el('p', { class: 'outcome bad' }, `The service could not be reached: ${error.message}`));
  }
}

// --- utility screens.
async function getJson(path) {
  const response = await fetch(path, { headers: apiHeaders() });
  return { ok: response.ok, body: await response.json().catch(() => ({})) };
}

async function showPartitions(result) {
  const { ok, body } = await getJson('/api/v1/stats');
  if (!ok) return result.replaceChildren(...refusal(body.status, (name) => body[name]));
  const table = el('table', {}, el('tr', {}, el('th', {}, 'Partition'), el('th', {}, 'Subjects')));
  for (const [name, count] of Object.entries(body.partitions))
    table.append(el('tr', {}, el('td', {}, name), el('td', {}, count)));
  result.replaceChildren(
    el(
      'p',
      { class: 'outcome ok' },
      `${body.total_subjects} subject(s) in ${Object.keys(body.partitions).length} partition(s)`,
    ),
    table,
  );
}

/** Sums of a metric's samples in Prometheus text, optionally per one label. */
function metricSum(text, name) {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (match?.[1] === name) {
      sum += Number(match[3]);
      seen = true;
    }
  }
  return seen ? sum : null;
}

async function showHealth(result) {
  const { body } = await getJson('/api/v1/health');
  const table = el('table', {}, el('tr', {}, el('th', {}, 'Component'), el('th', {}, 'State'), el('th', {}, 'Detail')));
  for (const [name, health] of Object.entries(body.details ?? {})) {
    table.append(
      el(
        'tr',
        {},
        el('td', {}, name),
        el('td', { class: health.healthy ? 'ok' : 'bad' }, health.state),
        el('td', {}, health.detail ?? health.model ?? ''),
      ),
    );
  }
  const parts = [
    el(
      'p',
      { class: `outcome ${body.status === 'healthy' ? 'ok' : 'bad'}` },
      `Service ${body.status ?? 'unreachable'}`,
    ),
    table,
  ];
  const metrics = await fetch('/metrics', { headers: apiHeaders() }).catch(() => null);
  if (metrics?.ok) {
    const text = await metrics.text();
    const requests = metricSum(text, 'facegate_http_request_duration_seconds_count');
    const seconds = metricSum(text, 'facegate_http_request_duration_seconds_sum');
    parts.push(
      el('h3', {}, 'Key metrics'),
      definitions([
        ['Requests served', requests],
        ['Mean request time', requests ? `${Math.round((seconds / requests) * 1000)} ms` : null],
        ['Gate refusals', metricSum(text, 'facegate_gate_rejections_total') ?? 0],
        ['Queue depth', metricSum(text, 'facegate_queue_depth')],
        ['Templates in the gallery', metricSum(text, 'facegate_gallery_templates')],
      ]),
    );
  } else {
    parts.push(el('p', {}, 'Metrics are not available to this key.'));
  }
  result.replaceChildren(...parts);
}

const REFRESHERS = { partitions: showPartitions, health: showHealth };

function refresh(name) {
  const result = document.querySelector(`#${name} .result`);
  return REFRESHERS[name](result).catch((error) =>
    result.replaceChildren(el('p', { class: 'outcome bad' }, error.message)),
  );
}

// --- navigation, forms and drag and drop.
function show() {
  const id = location.hash.slice(1) || 'enrol';
  for (const section of document.querySelectorAll('main section'))
    section.classList.toggle('active', section.id === id);
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#${id}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (REFRESHERS[id]) void refresh(id);
}
window.addEventListener('hashchange', show);
show();

for (const form of document.querySelectorAll('form[data-endpoint]')) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void submit(form);
  });
}
for (const button of document.querySelectorAll('[data-refresh]'))
  button.addEventListener('click', () => refresh(button.dataset.refresh));

for (const zone of document.querySelectorAll('.drop')) {
  const input = zone.querySelector('input[type=file]');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    if (event.dataTransfer?.files.length) input.files = event.dataTransfer.files;
  });
}
