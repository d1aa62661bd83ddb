/**
 * A pid recorded in a lab node's directory counts as that node's process only while its command
 * line names the node's directory: a reused pid (the node's process long gone) is never signalled.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { nodeProcess } from '../../src/lab/state.ts';

test('nodeProcess: alive and naming the node directory (as an argument, or inside one as sshd rewrites it)', async (t) => {
  const dir = '/tmp/passthru-lab-x/nodes/pve1';
  const own = spawn('sh', ['-c', 'sleep 30', dir], { stdio: 'ignore' });
  const other = spawn('sh', ['-c', 'sleep 30', '/tmp/passthru-lab-x/nodes/pve10'], { stdio: 'ignore' });
  const titled = spawn('sh', ['-c', 'sleep 30', `sshd: /usr/sbin/sshd -D -e -f ${dir}/sshd_config [listener]`], { stdio: 'ignore' });
  t.teardown(() => [own, other, titled].forEach((p) => p.kill('SIGKILL')));
  await new Promise((r) => setTimeout(r, 100));
  t.true(nodeProcess(own.pid!, dir));
  t.true(nodeProcess(titled.pid!, dir));
  t.false(nodeProcess(other.pid!, dir), 'another node whose name starts the same');
  t.false(nodeProcess(process.pid, dir), 'an unrelated live process (a reused pid)');
  t.false(nodeProcess(null, dir));
  const gone = spawn('true');
  await new Promise((r) => gone.on('exit', r));
  t.false(nodeProcess(gone.pid!, dir), 'a process that has exited');
});
