/** The evaluation's Markdown report: the printed tables plus SVG plots beside them. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { linePlot, type PlotSpec } from './plot.js';

export class Report {
  private readonly lines: string[] = [];
  readonly plots: string[] = [];

  constructor(
    readonly directory: string,
    private readonly header: string[],
  ) {
    mkdirSync(directory, { recursive: true });
  }

  line(text: string): void {
    this.lines.push(text);
  }

  /** Writes `<name>.svg` and links it from the report at this point. */
  plot(name: string, spec: PlotSpec): void {
    const file = `${name.replace(/[^a-z0-9_.-]+/gi, '-')}.svg`;
    writeFileSync(path.join(this.directory, file), linePlot(spec));
    this.plots.push(file);
    this.lines.push('', `![${spec.title}](${file})`, '');
  }

  /** Writes report.md; returns its path. */
  write(): string {
    const file = path.join(this.directory, 'report.md');
    writeFileSync(
      file,
      [...this.header, ...this.lines]
        .join('\n')
        .replace(/\n{3,}/g, '\n\n')
        .trimEnd() + '\n',
    );
    return file;
  }
}
