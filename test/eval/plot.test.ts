import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';

import { linePlot, percentTick, SVG_NAMESPACE, thin } from '../../tools/eval/plot.js';

function elements(root: XMLBuilder, name: string): XMLBuilder[] {
  return root.filter((node) => node.node.nodeName === name, false, true);
}

function attribute(element: XMLBuilder, name: string): string {
  return (element.node as unknown as { getAttribute(name: string): string | null }).getAttribute(name) ?? '';
}

function pointsOf(polyline: XMLBuilder): Array<[number, number]> {
  return attribute(polyline, 'points')
    .split(' ')
    .map((pair) => pair.split(',').map(Number) as [number, number]);
}

describe('SVG plots', () => {
  const svg = linePlot({
    title: 'DET <test> & more',
    x: { label: 'FMR', scale: 'log', format: percentTick },
    y: { label: 'FNMR', scale: 'log', format: percentTick },
    series: [
      {
        name: 'set A',
        // Rates of 0 cannot sit on a log axis: they are drawn on its edge, not dropped.
        points: [
          [0, 1],
          [1e-3, 0.2],
          [1e-2, 0.05],
          [0.1, 0.01],
          [1, 0],
        ],
      },
      {
        name: 'set <B> & "C"',
        dashed: true,
        points: [
          [0, 1],
          [5e-3, 0.5],
          [Number.NaN, 0.3],
          [1, 0.02],
        ],
      },
    ],
    xMarkers: [{ at: 1e-3, label: 'FMR 0.1 %' }],
  });
  const root = create(svg).root();

  it('is a well-formed SVG document in the SVG namespace', () => {
    assert.ok(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>'), 'XML declaration');
    assert.equal(root.node.nodeName, 'svg');
    assert.equal((root.node as unknown as { namespaceURI: string }).namespaceURI, SVG_NAMESPACE);
    assert.equal(elements(root, 'title')[0]?.node.textContent, 'DET <test> & more');
    assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'), 'no non-finite coordinates');
  });

  it('draws one polyline per series, named, inside the plotting area', () => {
    const polylines = elements(root, 'polyline');
    assert.deepEqual(
      polylines.map((line) => attribute(line, 'data-series')),
      ['set A', 'set <B> & "C"'],
    );
    assert.equal(attribute(polylines[1]!, 'stroke-dasharray'), '6 4');
    assert.notEqual(attribute(polylines[0]!, 'stroke'), attribute(polylines[1]!, 'stroke'));
    const frame = elements(root, 'rect').find((rect) => attribute(rect, 'class') === 'frame')!;
    const [left, top] = [Number(attribute(frame, 'x')), Number(attribute(frame, 'y'))];
    const [right, bottom] = [left + Number(attribute(frame, 'width')), top + Number(attribute(frame, 'height'))];
    const first = pointsOf(polylines[0]!);
    assert.equal(first.length, 5);
    for (const [x, y] of [...first, ...pointsOf(polylines[1]!)]) {
      assert.ok(x >= left && x <= right && y >= top && y <= bottom, `${x},${y} outside the frame`);
    }
    // (0, 1): left edge, top; (1, 0): right edge, bottom; the curve falls from left to right.
    assert.deepEqual(first[0], [left, top]);
    assert.deepEqual(first[4], [right, bottom]);
    for (let index = 1; index < first.length; index++) {
      const [[x0, y0], [x1, y1]] = [first[index - 1]!, first[index]!];
      assert.ok(x1 > x0 && y1 > y0, `point ${index} (${x1},${y1}) does not follow (${x0},${y0})`);
    }
    // The non-finite point is left out.
    assert.equal(pointsOf(polylines[1]!).length, 3);
  });

  it('labels log axes by decade and lists every series in the legend', () => {
    const texts = elements(root, 'text').map((text) => text.node.textContent);
    for (const tick of ['0.1 %', '1 %', '10 %', '100 %']) assert.ok(texts.includes(tick), `tick ${tick} missing`);
    assert.ok(texts.includes('FMR (log scale)') && texts.includes('FNMR (log scale)'), 'axis labels');
    const legend = elements(root, 'g').find((group) => attribute(group, 'class') === 'legend')!;
    assert.deepEqual(
      elements(legend, 'text').map((text) => text.node.textContent),
      ['set A', 'set <B> & "C"'],
    );
    assert.ok(texts.includes('FMR 0.1 %'), 'marker label');
  });

  it('puts nice ticks on a linear axis', () => {
    const linear = create(
      linePlot({
        title: 'EDC',
        x: { label: 'discarded', domain: [0, 0.5] },
        y: { label: 'FNMR' },
        series: [
          {
            name: 'q',
            points: [
              [0, 0.12],
              [0.5, 0.03],
            ],
          },
        ],
      }),
    ).root();
    const ticks = elements(linear, 'g').find((group) => attribute(group, 'class') === 'ticks')!;
    const labels = elements(ticks, 'text').map((text) => text.node.textContent);
    assert.deepEqual(labels, ['0', '0.1', '0.2', '0.3', '0.4', '0.5', '0', '0.05', '0.1', '0.15']);
  });

  it('thins points that add nothing to the picture', () => {
    assert.deepEqual(
      thin([
        [0, 0],
        [0.2, 0],
        [1, 0],
        [2, 0],
        [2, 1],
        [2, 2],
        [3, 3],
      ]),
      [
        [0, 0],
        [2, 0],
        [2, 2],
        [3, 3],
      ],
    );
  });
});
