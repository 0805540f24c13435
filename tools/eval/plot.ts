/**
 * Small SVG line plots for the evaluation report (DET, FNIR–FPIR and error-versus-discard
 * curves): axes on linear or log scales, ticks, grid, legend, one polyline per series.
 * The SVG is built with xmlbuilder2, never by string concatenation.
 */
import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';

export type Scale = 'linear' | 'log';

export interface Series {
  name: string;
  /** [x, y] in data units; non-finite points are left out, points off a log axis clipped to its edge. */
  points: Array<[number, number]>;
  dashed?: boolean;
}

export interface Axis {
  label: string;
  scale?: Scale;
  /** Default: from the data (log: whole decades; linear: from 0 or the data's minimum). */
  domain?: [number, number];
  /** Tick label; default: `1e-3` style on log axes, plain numbers on linear ones. */
  format?: (value: number) => string;
}

export interface PlotSpec {
  title: string;
  x: Axis;
  y: Axis;
  series: Series[];
  /** Vertical reference lines (an operating point such as FMR 1e-3). */
  xMarkers?: Array<{ at: number; label: string }>;
  /** Size of the plotting area in pixels (default 480 × 360); the legend adds to the width. */
  plotWidth?: number;
  plotHeight?: number;
}

export const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';

/** Colour-blind-safe palette (Okabe–Ito), then greys. */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000', '#777777'];

const MARGIN = { left: 72, top: 40, bottom: 56 };
/** Legend text width estimate per character at 12 px. */
const CHARACTER_WIDTH = 7;
/** A log axis's lower end when the data hold no positive value; rates of 0 sit on that edge. */
const LOG_FLOOR = 1e-3;
/** The lowest lower end a log axis takes from the data. */
const LOG_FLOOR_LIMIT = 1e-7;

interface ResolvedAxis {
  scale: Scale;
  domain: [number, number];
  ticks: number[];
  format: (value: number) => string;
  label: string;
}

/** Smallest and largest finite value (no spread: curves hold hundreds of thousands of points). */
function extent(values: number[]): [number, number] {
  let smallest = Infinity;
  let largest = -Infinity;
  for (const value of values) {
    if (!Number.isFinite(value)) continue;
    if (value < smallest) smallest = value;
    if (value > largest) largest = value;
  }
  return [smallest, largest];
}

function niceStep(span: number, wanted: number): number {
  const raw = span / wanted;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  const e = 1e-9;
  return (residual > 5 + e ? 10 : residual > 2 + e ? 5 : residual > 1 + e ? 2 : 1) * magnitude;
}

function defaultFormat(scale: Scale): (value: number) => string {
  if (scale === 'log') return (value) => (value >= 0.1 ? String(Number(value.toPrecision(3))) : value.toExponential(0));
  return (value) => String(Number(value.toPrecision(6)));
}

function resolveAxis(axis: Axis, values: number[]): ResolvedAxis {
  const scale = axis.scale ?? 'linear';
  let domain = axis.domain;
  if (scale === 'log') {
    if (!domain) {
      const [smallest, largest] = extent(values.filter((value) => value > 0));
      const low = Math.max(Number.isFinite(smallest) ? smallest : LOG_FLOOR, LOG_FLOOR_LIMIT);
      const high = Math.max(largest, low);
      // A decade below the smallest value when it sits on a decade, so that it stays apart
      // from the rates of 0 drawn on the edge.
      const bottom = Math.floor(Math.log10(low) + 1e-9);
      domain = [10 ** (low / 10 ** bottom < 1.5 ? bottom - 1 : bottom), 10 ** Math.ceil(Math.log10(high) - 1e-9)];
      // At least two decades, so that a curve of zeros (drawn on the lower edge) reads as such.
      if (domain[1] / domain[0] < 100) domain[0] = domain[1] / 100;
    }
    const ticks: number[] = [];
    for (let exponent = Math.ceil(Math.log10(domain[0]) - 1e-9); 10 ** exponent <= domain[1] * (1 + 1e-9); exponent++) {
      ticks.push(10 ** exponent);
    }
    return { scale, domain, ticks, format: axis.format ?? defaultFormat(scale), label: axis.label };
  }
  if (!domain) {
    const [smallest, largest] = extent(values);
    const low = Math.min(0, Number.isFinite(smallest) ? smallest : 0);
    const high = Math.max(Number.isFinite(largest) ? largest : 1, low + 1e-9);
    const step = niceStep(high - low, 5);
    domain = [Math.floor(low / step) * step, Math.ceil(high / step) * step];
  }
  const step = niceStep(domain[1] - domain[0], 5);
  const ticks: number[] = [];
  for (let value = Math.ceil(domain[0] / step - 1e-9) * step; value <= domain[1] + step * 1e-9; value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return { scale, domain, ticks, format: axis.format ?? defaultFormat(scale), label: axis.label };
}

/** Position in [0, 1] along the axis; off-axis values clamp to its ends. */
function fraction(axis: ResolvedAxis, value: number): number {
  const [low, high] = axis.domain;
  const position =
    axis.scale === 'log'
      ? (Math.log10(Math.max(value, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))
      : (value - low) / (high - low);
  return Math.min(1, Math.max(0, position));
}

function round(value: number): string {
  return String(Math.round(value * 10) / 10);
}

/** Renders the plot as a standalone SVG document. */
export function linePlot(spec: PlotSpec): string {
  const plotWidth = spec.plotWidth ?? 480;
  const plotHeight = Math.max(spec.plotHeight ?? 360, spec.series.length * 20 + 10);
  const longestName = Math.max(0, ...spec.series.map((series) => series.name.length));
  const width = MARGIN.left + plotWidth + 14 + 30 + longestName * CHARACTER_WIDTH + 10;
  const height = MARGIN.top + plotHeight + MARGIN.bottom;
  const allPoints = spec.series.flatMap((series) => series.points);
  const x = resolveAxis(
    spec.x,
    allPoints.map(([value]) => value),
  );
  const y = resolveAxis(
    spec.y,
    allPoints.map(([, value]) => value),
  );
  const px = (value: number): number => MARGIN.left + fraction(x, value) * plotWidth;
  const py = (value: number): number => MARGIN.top + (1 - fraction(y, value)) * plotHeight;

  const svg = create({ version: '1.0', encoding: 'UTF-8' }).ele('svg', {
    xmlns: SVG_NAMESPACE,
    width: String(width),
    height: String(height),
    viewBox: `0 0 ${width} ${height}`,
    'font-family': 'sans-serif',
    'font-size': '12',
  });
  svg.ele('title').txt(spec.title);
  svg.ele('rect', { x: '0', y: '0', width: String(width), height: String(height), fill: 'white' });
  svg
    .ele('defs')
    .ele('clipPath', { id: 'plot-area' })
    .ele('rect', {
      x: String(MARGIN.left),
      y: String(MARGIN.top),
      width: String(plotWidth),
      height: String(plotHeight),
    });
  svg
    .ele('text', { x: String(MARGIN.left + plotWidth / 2), y: '24', 'text-anchor': 'middle', 'font-size': '15' })
    .txt(spec.title);

  const grid = svg.ele('g', { class: 'grid', stroke: '#dddddd', 'stroke-width': '1' });
  const labels = svg.ele('g', { class: 'ticks', fill: '#333333' });
  for (const tick of x.ticks) {
    const at = round(px(tick));
    grid.ele('line', { x1: at, x2: at, y1: String(MARGIN.top), y2: String(MARGIN.top + plotHeight) });
    labels.ele('text', { x: at, y: String(MARGIN.top + plotHeight + 16), 'text-anchor': 'middle' }).txt(x.format(tick));
  }
  for (const tick of y.ticks) {
    const at = round(py(tick));
    grid.ele('line', { x1: String(MARGIN.left), x2: String(MARGIN.left + plotWidth), y1: at, y2: at });
    labels
      .ele('text', { x: String(MARGIN.left - 6), y: at, 'text-anchor': 'end', 'dominant-baseline': 'middle' })
      .txt(y.format(tick));
  }
  svg.ele('rect', {
    class: 'frame',
    x: String(MARGIN.left),
    y: String(MARGIN.top),
    width: String(plotWidth),
    height: String(plotHeight),
    fill: 'none',
    stroke: '#333333',
  });
  svg
    .ele('text', { x: String(MARGIN.left + plotWidth / 2), y: String(height - 14), 'text-anchor': 'middle' })
    .txt(x.label + (x.scale === 'log' ? ' (log scale)' : ''));
  const yLabelAt = `${18} ${MARGIN.top + plotHeight / 2}`;
  svg
    .ele('text', { transform: `translate(${yLabelAt}) rotate(-90)`, 'text-anchor': 'middle' })
    .txt(y.label + (y.scale === 'log' ? ' (log scale)' : ''));

  for (const [index, marker] of (spec.xMarkers ?? []).entries()) {
    const at = round(px(marker.at));
    const group = svg.ele('g', { class: 'marker' });
    group.ele('line', {
      x1: at,
      x2: at,
      y1: String(MARGIN.top),
      y2: String(MARGIN.top + plotHeight),
      stroke: '#888888',
      'stroke-dasharray': '2 3',
    });
    // Labels one under the other, so that markers close together stay readable.
    group
      .ele('text', { x: String(Number(at) + 3), y: String(MARGIN.top + 12 + 14 * index), fill: '#555555' })
      .txt(marker.label);
  }

  const curves = svg.ele('g', { class: 'series', 'clip-path': 'url(#plot-area)', fill: 'none', 'stroke-width': '1.8' });
  const legend = svg.ele('g', { class: 'legend' });
  spec.series.forEach((series, index) => {
    const colour = COLOURS[index % COLOURS.length]!;
    const line: XMLBuilder = curves.ele('polyline', {
      'data-series': series.name,
      stroke: colour,
      points: thin(
        series.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b)).map(([a, b]) => [px(a), py(b)]),
      )
        .map(([a, b]) => `${round(a)},${round(b)}`)
        .join(' '),
    });
    if (series.dashed) line.att('stroke-dasharray', '6 4');
    const rowY = MARGIN.top + 10 + index * 20;
    const legendX = MARGIN.left + plotWidth + 14;
    legend.ele('line', {
      x1: String(legendX),
      x2: String(legendX + 24),
      y1: String(rowY),
      y2: String(rowY),
      stroke: colour,
      'stroke-width': '2.5',
      ...(series.dashed ? { 'stroke-dasharray': '6 4' } : {}),
    });
    legend.ele('text', { x: String(legendX + 30), y: String(rowY), 'dominant-baseline': 'middle' }).txt(series.name);
  });
  return svg.end({ prettyPrint: true }) + '\n';
}

/**
 * Fewer points, same picture: drops points within half a pixel of the last one kept, and the
 * inner points of horizontal and vertical runs (a DET staircase is mostly such runs).
 */
export function thin(points: Array<[number, number]>): Array<[number, number]> {
  const near: Array<[number, number]> = [];
  for (const [index, point] of points.entries()) {
    const last = near[near.length - 1];
    const isLast = index === points.length - 1;
    if (!last || isLast || Math.abs(point[0] - last[0]) >= 0.5 || Math.abs(point[1] - last[1]) >= 0.5) {
      near.push(point);
    }
  }
  const kept: Array<[number, number]> = [];
  for (const [index, point] of near.entries()) {
    const previous = kept[kept.length - 1];
    const next = near[index + 1];
    const sameX = (a: [number, number], b: [number, number]): boolean => Math.abs(a[0] - b[0]) < 0.05;
    const sameY = (a: [number, number], b: [number, number]): boolean => Math.abs(a[1] - b[1]) < 0.05;
    if (
      previous &&
      next &&
      ((sameX(previous, point) && sameX(point, next)) || (sameY(previous, point) && sameY(point, next)))
    ) {
      continue;
    }
    kept.push(point);
  }
  return kept;
}

/** Tick labels for rates: `0.1 %`, `1 %`, `10 %`. */
export function percentTick(value: number): string {
  return `${Number((value * 100).toPrecision(3))} %`;
}
