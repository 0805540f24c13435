/**
 * Where comparison scores come from. The evaluation protocols (protocols.ts) enrol, search
 * and verify through a {@link ScoreSource}; the metrics never know which one produced the
 * scores. Two sources: {@link DirectSource} (templates extracted by the pipeline in this
 * process, compared in memory) and HttpSource (http-source.ts: a running facegate service).
 */
import path from 'node:path';

import { cosineSimilarity } from '../../packages/pipeline/src/index.js';
import { sharedDataDir } from './dataset.js';
import type { ExtractedFace } from './extract.js';

/** One image to evaluate and whose face it shows. */
export interface EvalItem {
  /** Relative to the shared data folder, or absolute. */
  path: string;
  identity: string;
}

export function itemFile(item: EvalItem): string {
  return path.resolve(sharedDataDir, item.path);
}

export interface Candidate {
  subjectId: string;
  score: number;
}

/** The value, or the error code (the contract's `status`) the request was refused with. */
export type Outcome<T> = { value: T; error?: undefined } | { value?: undefined; error: string };

/** A gallery partition of its own, empty when opened. */
export interface EvalGallery {
  enrol(subjectId: string, item: EvalItem): Promise<Outcome<true>>;
  /** Best candidates first, at most `topK`, every score (no threshold). */
  search(item: EvalItem, topK: number): Promise<Outcome<Candidate[]>>;
  verify(subjectId: string, item: EvalItem): Promise<Outcome<number>>;
  /** Removes what was enrolled. */
  close(): Promise<void>;
}

export interface ScoreSource {
  /** For reports: where the scores come from. */
  readonly description: string;
  openGallery(): Promise<EvalGallery>;
}

/**
 * The service's gates, emulated from the scores recorded at extraction (MAD is not: its score
 * is not recorded). An unset threshold is a gate that is off.
 */
export interface Gates {
  padThreshold?: number;
  qualityThreshold?: number;
  /** Refuse enrolment of an image with a second face of comparable size, as the service does. */
  refuseMultipleFaces?: boolean;
}

export const NO_GATES: Gates = {};

/**
 * Scores from the cached pipeline extraction (extract.ts), compared in memory: raw cosine
 * similarities, not clamped at 0 nor rounded as the API reports them.
 */
export class DirectSource implements ScoreSource {
  readonly description: string;
  private readonly faces: Map<string, ExtractedFace>;

  constructor(
    faces: Iterable<ExtractedFace>,
    private readonly gates: Gates = NO_GATES,
  ) {
    this.faces = new Map([...faces].map((face) => [face.path, face]));
    this.description = DirectSource.describe(gates);
  }

  static describe(gates: Gates): string {
    const on = [
      gates.padThreshold !== undefined ? `PAD ≥ ${gates.padThreshold}` : '',
      gates.qualityThreshold !== undefined ? `quality ≥ ${gates.qualityThreshold}` : '',
      gates.refuseMultipleFaces ? 'one face at enrolment' : '',
    ].filter(Boolean);
    return `pipeline in process (${on.length > 0 ? `gates: ${on.join(', ')}` : 'gates off'})`;
  }

  /** The template the service would compute for this image, or the code it would refuse it with. */
  analyse(item: EvalItem, operation: 'enrol' | 'search'): Outcome<Float32Array> {
    const face = this.faces.get(item.path);
    if (!face) throw new Error(`${item.path} was not extracted`);
    // In the pipeline's order: detection, PAD, (MAD), extraction, quality.
    if (face.error || !face.template) return { error: face.error ?? 'NO_FACE' };
    if (operation === 'enrol' && face.multipleFaces && this.gates.refuseMultipleFaces)
      return { error: 'MULTIPLE_FACES' };
    if (this.gates.padThreshold !== undefined && typeof face.pad === 'number' && face.pad < this.gates.padThreshold) {
      return { error: 'PAD_REJECTED' };
    }
    if (this.gates.qualityThreshold !== undefined && (face.quality ?? 0) < this.gates.qualityThreshold) {
      return { error: 'QUALITY_REJECTED' };
    }
    return { value: face.template };
  }

  async openGallery(): Promise<EvalGallery> {
    const enrolled = new Map<string, Float32Array>();
    return {
      enrol: async (subjectId, item) => {
        if (enrolled.has(subjectId)) throw new Error(`subject ${subjectId} enrolled twice`);
        const analysis = this.analyse(item, 'enrol');
        if (analysis.error !== undefined) return analysis;
        enrolled.set(subjectId, analysis.value);
        return { value: true };
      },
      search: async (item, topK) => {
        const analysis = this.analyse(item, 'search');
        if (analysis.error !== undefined) return analysis;
        const candidates = [...enrolled].map(([subjectId, template]) => ({
          subjectId,
          score: cosineSimilarity(analysis.value, template),
        }));
        // Stable: among equal scores the earlier enrolled subject ranks first.
        candidates.sort((first, second) => second.score - first.score);
        return { value: candidates.slice(0, topK) };
      },
      verify: async (subjectId, item) => {
        const template = enrolled.get(subjectId);
        if (!template) return { error: 'SUBJECT_NOT_FOUND' };
        const analysis = this.analyse(item, 'search');
        if (analysis.error !== undefined) return analysis;
        return { value: cosineSimilarity(analysis.value, template) };
      },
      close: async () => enrolled.clear(),
    };
  }
}
