/**
 * Plain lines, one per event worth a line: for CI logs, pipes and `--progress plain`.
 * Unchanged and skipped tasks are shown only with -v.
 */
import type { EventBus, RunEvent } from '../engine/events.ts';
import { paint, type Style } from './colour.ts';
import { diffText, failureBlock, resultLine } from './format.ts';

export interface ReporterOptions extends Style {
  check: boolean;
  diff: boolean;
  verbose: boolean;
  write: (text: string) => void;
}

export function plainReporter(bus: EventBus, o: ReporterOptions): () => void {
  const say = (t: string) => o.write(`${t}\n`);
  return bus.on((e: RunEvent) => {
    switch (e.type) {
      case 'stage-start':
        say(paint(o, 'bold', `STAGE ${e.stage} [${e.hosts.join(', ')}]`));
        break;
      case 'batch-start':
        if (e.count > 1) say(`batch ${e.index + 1}/${e.count}: ${e.hosts.join(', ')}`);
        break;
      case 'task-result': {
        const r = e.result;
        if (r.status === 'failed' || r.status === 'unreachable') say(failureBlock(o, r));
        else if ((r.status !== 'ok' && r.status !== 'skipped') || o.verbose) say(resultLine(o, r, o.check));
        if (o.diff && r.diff.length) o.write(diffText(o, r));
        break;
      }
      case 'reboot-wait':
        say(`reboot     ${e.host}: waiting (${e.waitingFor})`);
        break;
      case 'reboot-prepare':
        say(`reboot     ${e.host}: ${e.what}`);
        break;
      case 'reboot-start':
        say(`reboot     ${e.host}: rebooting (${e.reason})`);
        break;
      case 'reboot-up':
        say(`reboot     ${e.host}: back after ${(e.downForMs / 1000).toFixed(1)} s, boot_id ${e.bootId.slice(0, 8)}`);
        break;
      case 'reboot-pending':
        say(paint(o, 'magenta', `pending    ${e.host}: reboot pending: ${e.reason}`));
        break;
      case 'reboot-failed':
        say(paint(o, 'red', `reboot     ${e.host}: ${e.msg}`));
        break;
      case 'warning':
        say(paint(o, 'yellow', `warning: ${e.host ? `${e.host}: ` : ''}${e.msg}`));
        break;
      default:
        break;
    }
  });
}
