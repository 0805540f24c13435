/**
 * The CLI's exit status per outcome (documented in the README). Scripts can tell a negative
 * answer (no match) from a refusal, a missing subject, a key problem and a service problem.
 */
export const EXIT = {
  OK: 0,
  /** verify: no match; search: no candidate above the threshold. */
  NEGATIVE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** The service refused the request (no face, quality, PAD, invalid…); enrol-dir: any refusal. */
  REFUSED: 3,
  NOT_FOUND: 4,
  /** UNAUTHORIZED or FORBIDDEN. */
  ACCESS: 5,
  /** Unreachable, overloaded, unavailable or failing service. */
  SERVICE: 6,
} as const;

export function exitCodeFor(status: string): number {
  switch (status) {
    case 'OK':
      return EXIT.OK;
    case 'SUBJECT_NOT_FOUND':
    case 'PARTITION_NOT_FOUND':
      return EXIT.NOT_FOUND;
    case 'UNAUTHORIZED':
    case 'FORBIDDEN':
      return EXIT.ACCESS;
    case 'OVERLOADED':
    case 'UNAVAILABLE':
    case 'INTERNAL_ERROR':
      return EXIT.SERVICE;
    default:
      return status.startsWith('HTTP_') ? EXIT.SERVICE : EXIT.REFUSED;
  }
}
