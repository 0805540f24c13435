/** Feature extraction of one encoded photo as the enrol pipeline would see it (decode → detect → landmarks → MAD features). */
import { FacegateError } from '@facegate/contracts';

import { MAD_FEATURE_VERSION } from '../../packages/pipeline/src/mad/features.js';
import { madFeatureVector, type FaceLocator, type FeatureRecord } from './common.js';

export const FEATURE_CACHE_NAME = `features-v${MAD_FEATURE_VERSION}`;

export async function featureRecord(locator: FaceLocator, key: string, bytes: Uint8Array): Promise<FeatureRecord> {
  try {
    const face = await locator.locate(bytes);
    const vector = await madFeatureVector(face.image, face.fivePoints);
    const features = Array.from(vector, (value) => Number(value.toPrecision(7)));
    return {
      key,
      features,
      landmarks68: face.landmarks68.map(([x, y]) => [Number(x.toFixed(2)), Number(y.toFixed(2))]),
      fivePoints: face.fivePoints.map(([x, y]) => [x, y]),
    };
  } catch (error) {
    if (error instanceof FacegateError) return { key, error: error.code };
    throw error;
  }
}
