import { create } from 'xmlbuilder2';
import type { XMLBuilder } from 'xmlbuilder2/lib/interfaces.js';
import type { SerializedError } from './errors.js';
import type { FaceFindings, JobResult, ResultOf } from './jobs.js';
import type { ComponentHealthMap } from './health.js';
import { roundToReportedDecimals } from './scoring.js';

/** The XML root element of each biometric endpoint; errors use their endpoint's root too. */
export const XML_ROOT = {
  search: 'SearchResponse',
  verify: 'VerifyResponse',
  enrol: 'EnrolResponse',
  delete: 'DeleteResponse',
} as const;

export type BiometricEndpoint = keyof typeof XML_ROOT;

export const XML_CONTENT_TYPE = 'application/xml; charset=utf-8';

function formatScore(score: number): string {
  return String(roundToReportedDecimals(score));
}

function document(endpoint: BiometricEndpoint): XMLBuilder {
  return create({ version: '1.0', encoding: 'UTF-8' }).ele(XML_ROOT[endpoint]);
}

function render(root: XMLBuilder): string {
  return root.end({ prettyPrint: true }) + '\n';
}

/** Extension elements after the reference's ones (docs/API-CONTRACT.md, "Extensions"). */
function appendFace(root: XMLBuilder, face: FaceFindings | undefined): void {
  if (!face) return;
  const box = root.ele('face_box');
  for (const side of ['x', 'y', 'width', 'height'] as const) box.ele(side).txt(String(Math.round(face.box[side])));
  if (face.padScore !== undefined) root.ele('pad_score').txt(formatScore(face.padScore));
}

function searchXml(result: ResultOf<'search'>): string {
  const root = document('search');
  root.ele('status').txt('OK');
  const candidates = root.ele('candidates');
  for (const candidate of result.candidates) {
    const element = candidates.ele('candidate');
    element.ele('subject_id').txt(candidate.subjectId);
    element.ele('score').txt(formatScore(candidate.score));
    element.ele('rank').txt(String(candidate.rank));
  }
  root.ele('quality_score').txt(formatScore(result.qualityScore));
  root.ele('model_id').txt(result.modelId);
  appendFace(root, result.face);
  return render(root);
}

function verifyXml(result: ResultOf<'verify'>): string {
  const root = document('verify');
  root.ele('status').txt('OK');
  root.ele('match').txt(String(result.match));
  root.ele('score').txt(formatScore(result.score));
  root.ele('subject_id').txt(result.subjectId);
  root.ele('quality_score').txt(formatScore(result.qualityScore));
  root.ele('model_id').txt(result.modelId);
  appendFace(root, result.face);
  return render(root);
}

function enrolXml(result: ResultOf<'enrol'>): string {
  const root = document('enrol');
  root.ele('status').txt('OK');
  root.ele('subject_id').txt(result.subjectId);
  root.ele('quality_score').txt(formatScore(result.qualityScore));
  root.ele('model_id').txt(result.modelId);
  appendFace(root, result.face);
  return render(root);
}

function deleteXml(result: ResultOf<'delete'>): string {
  const root = document('delete');
  root.ele('status').txt('OK');
  root.ele('subject_id').txt(result.subjectId);
  return render(root);
}

/** The XML body of a successful biometric response, in the reference's element order. */
export function successXml(result: JobResult): string {
  switch (result.type) {
    case 'search':
      return searchXml(result);
    case 'verify':
      return verifyXml(result);
    case 'enrol':
      return enrolXml(result);
    case 'delete':
      return deleteXml(result);
    default:
      throw new TypeError(`${result.type} results are JSON, not XML`);
  }
}

const GATE_SCORES = ['quality_score', 'pad_score', 'mad_score'] as const;

/** The XML body of a failed biometric request: status code, message, and any gate score. */
export function errorXml(endpoint: BiometricEndpoint, error: SerializedError): string {
  const root = document(endpoint);
  root.ele('status').txt(error.code);
  root.ele('message').txt(error.message);
  for (const name of GATE_SCORES) {
    const value = error.details[name];
    if (value !== undefined) root.ele(name).txt(formatScore(value));
  }
  return render(root);
}

export interface HealthBody {
  status: 'healthy' | 'unhealthy';
  components: Record<string, boolean>;
  details: ComponentHealthMap;
}

/** The health JSON: the reference's boolean map, plus each component's state and reason. */
export function healthBody(components: ComponentHealthMap): HealthBody {
  const flags: Record<string, boolean> = {};
  for (const [name, health] of Object.entries(components)) flags[name] = health.healthy;
  const healthy = Object.values(flags).every(Boolean);
  return { status: healthy ? 'healthy' : 'unhealthy', components: flags, details: components };
}

/** The reference's stats, plus (extension) template counts: a subject may hold several. */
export function statsBody(result: ResultOf<'stats'>): {
  total_subjects: number;
  partitions: Record<string, number>;
  total_templates: number;
  templates: Record<string, number>;
} {
  return {
    total_subjects: result.totalSubjects,
    partitions: result.partitions,
    total_templates: result.totalTemplates,
    templates: result.templates,
  };
}

export function partitionsBody(result: ResultOf<'partitions'>): { partitions: string[] } {
  return { partitions: result.partitions };
}

/** Extension (DELETE /api/v1/partitions/{name}): the erased partition and what it held. */
export function partitionDeletionBody(result: ResultOf<'deletePartition'>): {
  partition: string;
  deleted: true;
  subjects: number;
  templates: number;
} {
  return { partition: result.partition, deleted: true, subjects: result.subjects, templates: result.templates };
}

/** Extension (GET /api/v1/calibration): each loaded model's calibration table, by model id. */
export function calibrationBody(result: ResultOf<'calibration'>): {
  calibrations: ResultOf<'calibration'>['calibrations'];
} {
  return { calibrations: result.calibrations };
}
