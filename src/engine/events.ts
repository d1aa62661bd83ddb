/**
 * Typed events: the engine emits, reporters (listr2 tree, plain lines, JSON report, tests)
 * subscribe. Nothing in the engine prints.
 */
import type { TaskResult, RunReport } from '../model/types.ts';

export type RunEvent =
  | { type: 'run-start'; playbook: string; check: boolean; hosts: string[] }
  | { type: 'stage-start'; stage: string; hosts: string[] }
  | { type: 'batch-start'; stage: string; hosts: string[]; index: number; count: number }
  | { type: 'host-start'; stage: string; host: string }
  | { type: 'facts'; stage: string; host: string; durationMs: number }
  | { type: 'task-start'; stage: string; host: string; role: string; task: string; kind: TaskResult['kind'] }
  | { type: 'task-result'; result: TaskResult }
  | { type: 'host-end'; stage: string; host: string; status: 'ok' | 'failed' | 'unreachable' }
  | { type: 'reboot-wait'; stage: string; host: string; reason: string; waitingFor: string }
  /** The host's turn to reboot came: what happens before it goes down (guests, quorum, HA). */
  | { type: 'reboot-prepare'; stage: string; host: string; what: string }
  | { type: 'reboot-start'; stage: string; host: string; reason: string; at: number }
  | { type: 'reboot-down'; stage: string; host: string; at: number }
  | { type: 'reboot-up'; stage: string; host: string; at: number; downForMs: number; bootId: string }
  | { type: 'reboot-pending'; stage: string; host: string; reason: string }
  | { type: 'reboot-failed'; stage: string; host: string; msg: string }
  | { type: 'stage-end'; stage: string }
  | { type: 'warning'; msg: string; host?: string }
  | { type: 'run-end'; report: RunReport };

export type Listener = (e: RunEvent) => void;

export class EventBus {
  private listeners: Listener[] = [];
  on(l: Listener): () => void {
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }
  emit(e: RunEvent): void {
    for (const l of this.listeners) l(e);
  }
}
