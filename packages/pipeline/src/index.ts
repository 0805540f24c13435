export { FacePipeline } from './pipeline.js';
export type {
  AnalysisDiagnostics,
  FaceAnalysis,
  HealthComponent,
  Operation,
  StageName,
  StageObserver,
} from './pipeline.js';
export { DEFAULT_PIPELINE_CONFIG } from './config.js';
export type { ModelPack, PipelineConfig } from './config.js';
export { cosineSimilarity } from './model_zoo/arcface.js';
export {
  cudaLoaderLibraryPath,
  defaultMaxBatch,
  probeCuda,
  warmUp,
  type CudaHost,
  type CudaProbe,
} from './onnx/execution-provider.js';
