/**
 * SSH transport benchmark against real sshd on loopback (not a test: it prints figures).
 *
 *   node --import tsx bench/ssh.ts            # N = 1, 10, 50
 *   node --import tsx bench/ssh.ts 1 10       # chosen N
 *
 * For each N: N sshd on 127.0.0.(10+i):2322, then
 *  - passthru: time to connect all (handshake cap 16), one round trip of `true` on all,
 *    sequential round trips per second on one connection, peak RSS of this process;
 *  - OpenSSH: `ssh -o BatchMode=yes host true` to all in parallel (new connection each, as
 *    passthru's connect + first command), and sequential `ssh host true` on one host;
 *  - ratios OpenSSH / passthru (higher = passthru faster).
 * Every sshd is stopped by pid at the end (also on failure); the whole run is time-boxed.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConnSpec } from '../src/model/types.ts';
import { Limiter } from '../src/transport/limiter.ts';
import { connectSsh, type SshConnection } from '../src/transport/ssh.ts';
import { knownHostsLine, makeKey, startSshd, tempDir, type Sshd } from '../test/helpers/sshd.ts';

const PORT = 2322;
const SEQ = 200;
const SSH_SEQ = 20;
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0 && n <= 200);
const Ns = sizes.length ? sizes : [1, 10, 50];

const hardStop = setTimeout(() => {
  console.error('bench: time box (10 min) exceeded, stopping');
  process.exit(1);
}, 600_000);

const now = () => performance.now();
const ms = (x: number) => `${x.toFixed(0)} ms`;

function sshTrue(s: Sshd, key: string, kh: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      'ssh',
      ['-q', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes',
        '-o', 'IdentitiesOnly=yes', '-o', 'ControlMaster=no', '-o', 'ControlPath=none', '-i', key, '-p', String(s.port), `root@${s.host}`, 'true'],
      { stdio: 'ignore', env: { PATH: process.env.PATH } },
    );
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(0) : reject(new Error(`ssh ${s.host} exited ${code}`))));
  });
}

interface Row {
  n: number;
  connect: number;
  roundAll: number;
  rtPerSec: number;
  rssMiB: number;
  sshAll: number;
  sshPerSec: number;
}

async function runN(n: number): Promise<Row> {
  const dir = tempDir(`bench${n}`);
  const key = makeKey(dir, 'id_ed25519');
  const servers: Sshd[] = [];
  try {
    const started = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => startSshd({ address: `127.0.0.${10 + i}`, port: PORT, rootKeys: [key.pub], dir: undefined })),
    );
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
    const bad = started.find((s) => s.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
    const kh = join(dir, 'known_hosts');
    writeFileSync(kh, servers.map(knownHostsLine).join(''));
    const spec = (s: Sshd): ConnSpec => ({
      host: s.host, port: s.port, user: 'root', identityFile: key.path, become: false,
      hostKeyChecking: 'strict', knownHostsFile: kh, transport: 'ssh',
    });
    const handshakes = new Limiter(16);
    const env = { PATH: process.env.PATH };

    let t0 = now();
    const conns: SshConnection[] = await Promise.all(servers.map((s, i) => connectSsh(`h${i}`, spec(s), { handshakes, env })));
    const connect = now() - t0;

    t0 = now();
    await Promise.all(conns.map((c) => c.exec('true')));
    const roundAll = now() - t0;

    t0 = now();
    for (let i = 0; i < SEQ; i++) await conns[0]!.exec('true');
    const rtPerSec = SEQ / ((now() - t0) / 1000);
    const rssMiB = process.resourceUsage().maxRSS / 1024;
    await Promise.all(conns.map((c) => c.close()));

    t0 = now();
    await Promise.all(servers.map((s) => sshTrue(s, key.path, kh)));
    const sshAll = now() - t0;

    t0 = now();
    for (let i = 0; i < SSH_SEQ; i++) await sshTrue(servers[0]!, key.path, kh);
    const sshPerSec = SSH_SEQ / ((now() - t0) / 1000);

    return { n, connect, roundAll, rtPerSec, rssMiB, sshAll, sshPerSec };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const rows: Row[] = [];
for (const n of Ns) {
  process.stderr.write(`bench: N=${n} ...\n`);
  rows.push(await runN(n));
}
clearTimeout(hardStop);

const pad = (s: string, w: number) => s.padStart(w);
console.log(
  ['N', 'connect all', 'true on all', 'connect+true', 'rt/s (1 conn)', 'peak RSS', 'ssh true all', 'ratio all', 'ssh true/s', 'ratio rt/s']
    .map((h, i) => pad(h, i === 0 ? 3 : 13))
    .join(' '),
);
for (const r of rows) {
  const total = r.connect + r.roundAll;
  console.log(
    [
      pad(String(r.n), 3),
      pad(ms(r.connect), 13),
      pad(ms(r.roundAll), 13),
      pad(ms(total), 13),
      pad(r.rtPerSec.toFixed(0), 13),
      pad(`${r.rssMiB.toFixed(0)} MiB`, 13),
      pad(ms(r.sshAll), 13),
      pad(`${(r.sshAll / total).toFixed(2)}x`, 13),
      pad(r.sshPerSec.toFixed(1), 13),
      pad(`${(r.rtPerSec / r.sshPerSec).toFixed(1)}x`, 13),
    ].join(' '),
  );
}
console.log(
  `ratio all = OpenSSH parallel \`ssh host true\` time / passthru connect+true time; ratio rt/s = passthru round trips/s on one connection / sequential \`ssh host true\` per second (new connection each). Peak RSS is this process (cumulative over the run).`,
);
