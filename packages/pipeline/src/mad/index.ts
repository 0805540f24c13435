export {
  MorphDetector,
  MAD_DEFAULT_PARAMETERS_FILE,
  MAD_DEFAULT_THRESHOLD,
  MAD_HANDMADE_MODEL,
  MAD_MODEL_ID,
  MAD_STEM_MODEL,
  type MadInput,
  type MadModelChoice,
} from './detector.js';
export {
  madFeatures,
  madFeatureNamesOf,
  madCrops,
  MAD_FEATURE_NAMES,
  MAD_FEATURE_VERSION,
  MAD_HANDMADE_FEATURE_COUNT,
  MAD_TEXTURE_FEATURE_COUNT,
} from './features.js';
export {
  STEM_FEATURE_NAMES,
  STEM_RECOGNISER_SHA256,
  STEM_TAPS,
  hasStemTaps,
  stemFeatures,
  withStemFeatures,
  type TapTensor,
} from './stem-features.js';
export { CONSISTENCY_FEATURE_NAMES, consistencyFeatures } from './consistency-features.js';
export {
  MAD_PARAMETERS_FORMAT,
  MadParametersError,
  canonicalModelText,
  evaluateModel,
  loadParameters,
  modelChecksum,
  validateParameters,
  type MadLayer,
  type MadModel,
  type MadParametersFile,
} from './parameters.js';
