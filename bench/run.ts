/**
 * `npm run bench`: passthru side by side with its floors and ansible-core (bench/compare.ts), with
 * its flags (`npm run bench -- --sizes 10,50 --json out.json`). The other benchmarks by name:
 * `npm run bench -- ssh` (the SSH transport against OpenSSH), `npm run bench -- converge` (full
 * converges against the unavoidable waits), `npm run bench -- vm-stage` (what a no-op VM stage adds
 * per node), `npm run bench -- probe` (the facts probe's CPU on a lab node, by section).
 * Benchmarks measure; they assert nothing.
 *
 * The benchmark runs as a child process; SIGINT and SIGTERM are passed on to it and this process
 * waits for it, so that its own handler takes its lab down before anything exits.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const named = ['ssh', 'converge', 'compare', 'vm-stage', 'probe'].includes(args[0] ?? '');
const bench = named ? args[0]! : 'compare';
const file = fileURLToPath(new URL(`./${bench}.ts`, import.meta.url));
console.error(`### bench/${bench}.ts`);
const child = spawn(process.execPath, ['--import', 'tsx', file, ...(named ? args.slice(1) : args)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 128 + 15 : 1);
});
