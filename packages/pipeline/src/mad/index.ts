export {
  MorphDetector,
  MAD_DEFAULT_PARAMETERS_FILE,
  MAD_DEFAULT_THRESHOLD,
  MAD_MODEL_ID,
  type MadInput,
} from './detector.js';
export {
  madFeatures,
  madCrops,
  MAD_FEATURE_NAMES,
  MAD_FEATURE_VERSION,
  MAD_TEXTURE_FEATURE_COUNT,
} from './features.js';
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
