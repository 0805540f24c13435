// Types of gpu-provider.mjs for the TypeScript tests that drive it.
export interface ProviderPins {
  package: string;
  version: string;
  onnxruntimeVersion: string;
  files: Record<string, { path: string; sha256: string }>;
  hostLibraries: Record<string, string>;
}
export function readProviderPins(): ProviderPins;
export function onnxruntimeDir(projectRoot?: string): string;
export function sha256Of(file: string): Promise<string>;
export function installCudaProvider(options?: {
  projectRoot?: string;
  pins?: ProviderPins;
  cacheDir?: string;
  tarball?: string;
  packageSpec?: string;
  log?: (message: string) => void;
}): Promise<{ targetDir: string; placed: string[] }>;
