/** Names and limits settled by the API contract ("Names and limits"). */
export const PARTITION_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
export const DEFAULT_PARTITION = 'default';
/** An `Idempotency-Key` header (extension: retries of enrol, delete and a partition's erasure). */
export const IDEMPOTENCY_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const SUBJECT_ID_MAX_LENGTH = 128;
/**
 * Control characters are refused by the contract; lone surrogates and U+FFFE/U+FFFF are refused
 * as well because XML 1.0 cannot carry them, and every subject_id must round-trip through XML.
 */
export const SUBJECT_ID_PATTERN = '^[^\\p{Cc}\\p{Cs}\\uFFFE\\uFFFF]+$';
export const DEFAULT_TOP_K = 5;
export const MAX_TOP_K = 100;
export const DEFAULT_MATCH_THRESHOLD = 0.45;
export const TEMPLATE_DIMENSION = 512;
