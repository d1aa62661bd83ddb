/** Inventory: loading (groups, variable precedence, connection settings) and host patterns. */
export { loadInventory } from './load.ts';
export { matchHosts } from './patterns.ts';
