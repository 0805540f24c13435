import path from 'node:path';
import type { ResolvedModel } from '../../packages/pipeline/src/manifest.js';
import { sharedModelsDir } from './paths.js';

/**
 * The SCRFD-500M test model of ../shared/models as a resolved pack entry: the same output layout
 * as buffalo_l's det_10g, so it exercises the SCRFD decoder (tests and the eval tool only).
 */
export function sharedScrfdModel(): ResolvedModel {
  return {
    role: 'detection',
    filePath: path.join(sharedModelsDir, 'scrfd_500m_bnkps.onnx'),
    entry: {
      id: 'scrfd-500m-bnkps',
      family: 'scrfd',
      file: 'scrfd_500m_bnkps.onnx',
      sha256: '6c6ba7956684796d7d582bfa1ab95dfe01dd280159f6bff1e23c1bc32bcc8431',
      inputs: [{ name: 'input.1', shape: [null, 3, null, null] }],
      outputs: [1, 1, 1, 4, 4, 4, 10, 10, 10].map((width) => ({ shape: [null, null, width] })),
      inputSize: [640, 640],
    },
  };
}
