export { FacePipeline } from './pipeline.js';
export { createFaceAnalyser, PipelinePool } from './pipeline-pool.js';
export type {
  AnalysisDiagnostics,
  FaceAnalyser,
  FaceAnalysis,
  InferencePlacement,
  HealthComponent,
  Operation,
  HeadPoseSource,
  StageName,
  StageObserver,
} from './pipeline.js';
export { DEFAULT_PIPELINE_CONFIG } from './config.js';
export type { ModelPack, PipelineConfig } from './config.js';
export { cosineSimilarity } from './model_zoo/arcface.js';
export {
  cudaLoaderLibraryPath,
  defaultMaxBatch,
  defaultPipelineThreads,
  deviceForDefaults,
  driverVersionIn,
  probeCuda,
  warmUp,
  type CudaHost,
  type CudaProbe,
} from './onnx/execution-provider.js';
export { imageLibraries, imageLibrariesHealth, type ImageLibraries } from './image/native-libraries.js';
export { onnxruntimeTelemetryFolder } from './onnx/telemetry-leftovers.js';
