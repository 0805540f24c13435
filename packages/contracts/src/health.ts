/**
 * How one component of the service stands. `healthy` is what the reference's boolean
 * `components` map shows; `state` says why, so that a disabled or not-yet-built stage is
 * visible instead of silently missing.
 */
export type ComponentState = 'ready' | 'disabled' | 'absent' | 'failed';

export interface ComponentHealth {
  healthy: boolean;
  state: ComponentState;
  /** Model id or file behind the component, where there is one. */
  model?: string;
  /** Human-readable reason for a state other than `ready`. */
  detail?: string;
}

export type ComponentHealthMap = Record<string, ComponentHealth>;
