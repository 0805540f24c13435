export { FacegateClient, ServiceUnreachable, type Reply } from './client.js';
export { enrolDirectory, listSubjects, type EnrolDirSummary } from './enrol-dir.js';
export { EXIT, exitCodeFor } from './exit-codes.js';
