/**
 * One host's reboot, once its lane gave it a slot, in named phases:
 *
 * 1. quorum gate: fresh facts (guests, quorum) read just before; a cluster member waits until its
 *    cluster is quorate and stays so without it;
 * 2. drain guests: under `guests: shutdown`, shut down the running guests and wait until none runs
 *    (HA maintenance is entered before, when asked);
 * 3. reboot and prove: send the reboot, then wait for a new boot_id and a test command;
 * 4. rejoin: a cluster member must see a quorate cluster again before its slot is given back.
 *
 * Ctrl-C before the reboot is sent: nothing new starts, and guests the drain shut down are
 * started again; those that do not start, or whose host was already rebooting, are named in the
 * outcome (`stoppedGuests`) so the report says how to start them.
 */
import type { Facts } from '../facts/types.ts';
import { cmd } from '../transport/connection.ts';
import { pollUntil } from './poll.ts';
import {
  INTERRUPTED,
  REBOOT_COMMAND,
  describeGuests,
  errMsg,
  guestCommand,
  quorumProblem,
  runningGuests,
  type Guest,
  type Lane,
  type RebootCandidate,
  type RebootOptions,
  type RebootOutcome,
} from './reboot-rules.ts';

/** Everything a phase needs: the candidate, its lane (cluster members) and the run's options. */
interface Turn {
  c: RebootCandidate;
  lane?: Lane;
  opts: RebootOptions;
  now: () => number;
  pollMs: number;
  timeoutMs: number;
  /** `600s`, as the messages say it. */
  timeoutText: string;
}

/** A phase either hands its result to the next one or ends the host's turn with an outcome. */
type Phase<T> = { next: T } | { end: RebootOutcome };

const pending = (host: string, reason: string, stoppedGuests: Guest[] = []): RebootOutcome => ({
  host,
  status: 'pending',
  reason,
  ...(stoppedGuests.length ? { stoppedGuests } : {}),
});
const failed = (host: string, msg: string, hint?: string, downAt?: number): RebootOutcome => ({
  host,
  status: 'failed',
  msg,
  ...(hint ? { hint } : {}),
  ...(downAt !== undefined ? { downAt } : {}),
});

export async function rebootHost(c: RebootCandidate, opts: RebootOptions, lane?: Lane): Promise<RebootOutcome> {
  const t: Turn = {
    c,
    lane,
    opts,
    now: opts.now ?? Date.now,
    pollMs: opts.pollMs ?? 1000,
    timeoutMs: opts.stage.rebootTimeoutS * 1000,
    timeoutText: `${opts.stage.rebootTimeoutS}s`,
  };
  const { host, conn } = c;
  const { stage, bus, signal } = opts;
  if (signal?.aborted) return pending(host, INTERRUPTED);
  bus.emit({ type: 'reboot-prepare', stage: stage.name, host, what: 'its turn: reading guests and quorum' });

  const gate = await quorumGate(t);
  if ('end' in gate) return gate.end;
  if (!gate.next.bootId) {
    return failed(host, `${host}: cannot read /proc/sys/kernel/random/boot_id, so a reboot could not be proven; not rebooting`);
  }

  // HA maintenance, for cluster members when asked: on before the guests go, off once back.
  const node = gate.next.hostname || host;
  const ha = !!lane && stage.haMaintenance;
  const haDisable = cmd('ha-manager', 'crm-command', 'node-maintenance', 'disable', node);
  const haHint = ha ? `; HA maintenance may still be on: \`${haDisable}\`` : '';
  const leaveHa = async (): Promise<void> => {
    if (!ha) return;
    try {
      await conn.exec(haDisable);
    } catch (e) {
      bus.emit({ type: 'warning', host, msg: `${host}: could not leave HA maintenance: ${errMsg(e)}; run \`${haDisable}\`` });
    }
  };
  if (ha) {
    try {
      await conn.exec(cmd('ha-manager', 'crm-command', 'node-maintenance', 'enable', node));
    } catch (e) {
      return failed(host, `${host}: could not enable HA maintenance, not rebooting: ${errMsg(e)}`, 'check `ha-manager status`, or set ha_maintenance: false');
    }
  }

  const drained = await drainGuests(t, gate.next);
  if ('end' in drained) {
    await leaveHa();
    return drained.end;
  }
  const { facts, shutDown } = drained.next;
  if (signal?.aborted) {
    const left = await startGuestsAgain(t, shutDown);
    await leaveHa();
    const started = shutDown.filter((g) => !left.includes(g));
    const said = [
      started.length ? `guests started again: ${describeGuests(started)}` : '',
      left.length ? `guests left stopped: ${describeGuests(left)}` : '',
    ].filter(Boolean);
    return pending(host, [INTERRUPTED, ...said].join('; '), left);
  }

  const proved = await rebootAndProve(t, facts.bootId!, haHint);
  if ('end' in proved) return withStopped(proved.end, t, shutDown);
  const { downAt, upAt } = proved.next;
  let back = proved.next.back;

  if (lane) {
    const rejoined = await rejoin(t, lane, back, upAt, downAt, haHint);
    if ('end' in rejoined) return withStopped(rejoined.end, t, shutDown);
    back = rejoined.next;
  }
  if (ha) {
    try {
      await conn.exec(haDisable);
    } catch (e) {
      return withStopped(failed(host, `${host}: rebooted, but could not leave HA maintenance: ${errMsg(e)}`, `run \`${haDisable}\``, downAt), t, shutDown);
    }
  }
  return withStopped({ host, status: 'rebooted', facts: back, downAt, upAt: t.now() }, t, shutDown);
}

/** Phase 1: fresh facts; refuse running guests under `refuse`; a member waits for quorum headroom. */
async function quorumGate(t: Turn): Promise<Phase<Facts>> {
  const { c, lane, opts } = t;
  const { host } = c;
  const deadline = t.now() + t.timeoutMs;
  let problem = '';
  let end: RebootOutcome | undefined;
  const r = await pollUntil(
    async () => {
      let facts: Facts;
      try {
        facts = await before(t, opts.probe(c.conn), deadline, `${host}: probe`);
      } catch (e) {
        end = failed(host, `${host}: could not read its state before the reboot: ${errMsg(e)}`, 'check that the host is reachable, then rerun');
        return null;
      }
      const running = runningGuests(facts);
      if (running.length && opts.stage.guestPolicy === 'refuse') {
        end = pending(host, `guests running: ${describeGuests(running)}; stop them or set guests: shutdown`);
        return null;
      }
      if (!lane) return facts;
      if (facts.cluster.quorumUnknown !== undefined) {
        end = failed(
          host,
          `${host}: not rebooted: it is a member of cluster ${lane.name}, but its quorum cannot be read (${facts.cluster.quorumUnknown}); rebooting it could cost the cluster its quorum`,
          'check `systemctl status corosync pve-cluster` and `pvecm status` on the host, bring corosync back, then rerun',
        );
        return null;
      }
      problem = quorumProblem(host, facts, lane) ?? '';
      return problem ? undefined : facts;
    },
    {
      deadline,
      intervalMs: t.pollMs,
      now: t.now,
      signal: opts.signal,
      onWait: () => wait(t, `cluster ${lane!.name} ${problem}`, `quorum of cluster ${lane!.name}`),
    },
  );
  if (end) return { end };
  if (r.status === 'done' && r.value) return { next: r.value };
  if (r.status === 'aborted') return { end: pending(host, INTERRUPTED) };
  lane!.halted = `cluster ${lane!.name}: not quorate before the reboot of ${host}`;
  return {
    end: failed(
      host,
      `${host}: not rebooted: cluster ${lane!.name} ${problem}, still after waiting ${t.timeoutText}; rebooting it could lose quorum`,
      `check \`pvecm status\` on the members of ${lane!.name}, bring missing members back, then rerun`,
    ),
  };
}

/** Phase 2: under `guests: shutdown`, shut the running guests down and wait until none runs. */
async function drainGuests(t: Turn, facts: Facts): Promise<Phase<{ facts: Facts; shutDown: Guest[] }>> {
  const { c, opts } = t;
  const { host, conn } = c;
  const shutDown = runningGuests(facts);
  if (!shutDown.length || opts.stage.guestPolicy !== 'shutdown') return { next: { facts, shutDown: [] } };
  opts.bus.emit({ type: 'reboot-prepare', stage: opts.stage.name, host, what: `shutting down ${shutDown.length} guest${shutDown.length > 1 ? 's' : ''}` });
  const deadline = t.now() + t.timeoutMs;
  const secs = String(Math.max(1, Math.ceil(t.timeoutMs / 1000)));
  await Promise.all(
    shutDown.map((g) => conn.exec(guestCommand(g, 'shutdown', '--timeout', secs), { nothrow: true, timeoutMs: t.timeoutMs + 5000 }).catch(() => undefined)),
  );
  let running = shutDown;
  const r = await pollUntil(
    async () => {
      try {
        const f = await before(t, opts.probe(conn), deadline, `${host}: probe`);
        running = runningGuests(f);
        return running.length ? undefined : f;
      } catch {
        return undefined; // keep trying until the deadline
      }
    },
    { deadline, intervalMs: t.pollMs, now: t.now },
  );
  if (r.status === 'done') return { next: { facts: r.value, shutDown } };
  return {
    end: failed(
      host,
      `${host}: guests still running ${t.timeoutText} after shutdown was asked: ${describeGuests(running)}; not rebooting`,
      'shut them down by hand, or set guests: ignore',
    ),
  };
}

/** Phase 3: send the reboot; proven by a boot_id other than `bootBefore`, then a test command. */
async function rebootAndProve(t: Turn, bootBefore: string, haHint: string): Promise<Phase<{ back: Facts; downAt: number; upAt: number }>> {
  const { c, lane, opts } = t;
  const { host, conn } = c;
  const { stage, bus } = opts;
  bus.emit({ type: 'reboot-start', stage: stage.name, host, reason: c.reasons.join('; ') || 'reboot requested', at: t.now() });
  try {
    await conn.exec(REBOOT_COMMAND, { nothrow: true, timeoutMs: 15_000 });
  } catch {
    // the connection may drop under the command: proof comes from the boot_id only
  }
  const downAt = t.now();
  bus.emit({ type: 'reboot-down', stage: stage.name, host, at: downAt });
  const deadline = downAt + t.timeoutMs;
  let lastErr = '';
  // No signal: a host already down is waited for, Ctrl-C or not.
  const r = await pollUntil(
    async () => {
      try {
        // Poll at a steady pace: a node that is back should be seen within a poll, not a backoff.
        await conn.reconnect({ deadlineMs: Math.max(1, deadline - t.now()), initialDelayMs: Math.min(250, t.pollMs), maxDelayMs: t.pollMs });
        const f = await before(t, opts.probe(conn), deadline, `${host}: probe`);
        if (f.bootId && f.bootId !== bootBefore) {
          await before(t, conn.exec('true'), deadline, `${host}: test command`);
          return f;
        }
        lastErr = `still running the boot from before (boot_id ${bootBefore}): did the reboot command take effect?`;
      } catch (e) {
        lastErr = errMsg(e); // down, booting, or the old boot still shutting down: try again
      }
      return undefined;
    },
    { deadline, intervalMs: t.pollMs, now: t.now },
  );
  if (r.status !== 'done') {
    if (lane) lane.halted = `cluster ${lane.name}: member ${host} did not come back`;
    return {
      end: failed(
        host,
        `${host} did not come back within ${t.timeoutText} of going down at ${new Date(downAt).toISOString()}` +
          (lastErr ? ` (last error: ${lastErr.split('\n')[0]})` : ''),
        `check ${host}'s console; once it is up, rerun with --limit @<failed-hosts file>${haHint}`,
        downAt,
      ),
    };
  }
  const upAt = t.now();
  bus.emit({ type: 'reboot-up', stage: stage.name, host, at: upAt, downForMs: upAt - downAt, bootId: r.value.bootId });
  return { next: { back: r.value, downAt, upAt } };
}

/** Phase 4: a member back from its reboot must see a quorate cluster before the next one goes. */
async function rejoin(t: Turn, lane: Lane, back: Facts, upAt: number, downAt: number, haHint: string): Promise<Phase<Facts>> {
  const { c, opts } = t;
  const { host } = c;
  const deadline = upAt + t.timeoutMs;
  let latest = back;
  let first = true;
  const r = await pollUntil(
    async () => {
      if (!first) {
        try {
          latest = await before(t, opts.probe(c.conn), deadline, `${host}: probe`);
        } catch {
          // try again until the deadline
        }
      }
      first = false;
      return latest.cluster.quorate === true ? latest : undefined;
    },
    {
      deadline,
      intervalMs: t.pollMs,
      now: t.now,
      onWait: () => wait(t, `rebooted; waiting for cluster ${lane.name} to be quorate again`, `quorum of cluster ${lane.name}`),
    },
  );
  if (r.status === 'done') return { next: r.value };
  lane.halted = `cluster ${lane.name}: member ${host} did not rejoin a quorate cluster`;
  return {
    end: failed(
      host,
      `${host} came back (boot ${latest.bootId}) but cluster ${lane.name} is not quorate from it after ${t.timeoutText}`,
      `check \`pvecm status\` on ${host} and corosync on the members${haHint}`,
      downAt,
    ),
  };
}

/** Ctrl-C after the drain, before the reboot: start the guests again. Returns those that did not start. */
async function startGuestsAgain(t: Turn, guests: Guest[]): Promise<Guest[]> {
  if (!guests.length) return [];
  const { c, opts } = t;
  opts.bus.emit({ type: 'reboot-prepare', stage: opts.stage.name, host: c.host, what: `interrupted: starting ${guests.length} guest${guests.length > 1 ? 's' : ''} again` });
  const timeoutMs = Math.min(t.timeoutMs, START_TIMEOUT_MS);
  const started = await Promise.all(
    guests.map(async (g) => {
      try {
        const r = await before(t, c.conn.exec(guestCommand(g, 'start'), { nothrow: true, timeoutMs }), t.now() + timeoutMs + 1000, `${c.host}: start ${g.id}`);
        return r.code === 0;
      } catch {
        return false;
      }
    }),
  );
  return guests.filter((_, i) => !started[i]);
}

/** Bound on starting one guest again after Ctrl-C. */
const START_TIMEOUT_MS = 120_000;

/**
 * After Ctrl-C, the guests the drain shut down that are not running now (the reboot was already
 * sent, so they were not started again) go into the outcome, for the report to name.
 */
function withStopped(o: RebootOutcome, t: Turn, shutDown: Guest[]): RebootOutcome {
  if (!shutDown.length || !t.opts.signal?.aborted) return o;
  const now = o.status === 'rebooted' ? o.facts.guests : [];
  const left = shutDown.filter((g) => !now.some((x) => x.id === g.id && x.kind === g.kind && x.status === 'running'));
  return left.length ? { ...o, stoppedGuests: left } : o;
}

function wait(t: Turn, reason: string, waitingFor: string): void {
  t.opts.bus.emit({ type: 'reboot-wait', stage: t.opts.stage.name, host: t.c.host, reason, waitingFor });
}

/** Race a promise against an absolute deadline of `now()`. */
function before<T>(t: Turn, p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in time`)), Math.max(0, deadline - t.now()));
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
