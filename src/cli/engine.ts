/**
 * What the run commands need, in one module that src/cli/main.ts imports on first use (not at
 * start-up): the engine, the loaders, the modules, the reporters and the transport.
 */
export { EventBus } from '../engine/events.ts';
export { planRun, runPlaybook } from '../engine/run.ts';
export { selectedSteps } from '../engine/host.ts';
export { defaultFailedHostsPath, writeFailedHosts } from '../engine/failed-hosts.ts';
export { loadInventory } from '../inventory/index.ts';
export { loadExtraVars, loadPlaybook } from '../load/playbook.ts';
export { installedRoleCache } from '../load/role-cache.ts';
export { checkHostVars } from '../load/hostvars.ts';
export { knownTags, unknownTags } from '../load/tags.ts';
export { modules } from '../modules/index.ts';
export { moduleText } from '../modules/listing.ts';
export { openConnection } from '../transport/index.ts';
export { Limiter } from '../transport/limiter.ts';
export { plainReporter } from '../report/plain.ts';
export { liveReporter } from '../report/live.ts';
export { recapTable } from '../report/format.ts';
export { paint } from '../report/colour.ts';
export { terminalPrompt } from './prompt.ts';
