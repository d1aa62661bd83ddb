/**
 * Every section parser of the facts probe, from the files that own them (system.ts,
 * hardware.ts, cluster.ts): one import for the `apt` module and the tests.
 */
export * from './cluster.ts';
export * from './hardware.ts';
export * from './system.ts';
