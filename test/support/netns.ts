/**
 * A small lab of "hosts" on one machine: one network namespace per host, each joined to a bridge in the root
 * namespace by a veth pair, addresses in a private /24 (the bridge is .1, hosts .2 onwards). Names carry a random
 * run id so parallel runs never collide, and every interface name stays within the kernel's 15 characters.
 * `destroy()` removes the namespaces (which takes their veth ends along) and the bridge, and never throws.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

export interface LabHost {
  /** The host's role name, e.g. `coord-a`. */
  name: string;
  /** Its network namespace. */
  netns: string;
  /** Its IPv4 address on the lab's /24. */
  address: string;
  /** The veth end on the bridge (root namespace): set it down to cut the host off. */
  hostLink: string;
}

export interface Lab {
  /** The bridge's own address: processes of the root namespace (the test itself) are reached there. */
  gateway: string;
  hosts: Map<string, LabHost>;
  host(name: string): LabHost;
  /** Cut a host off the network (its link goes down; its sockets stay open, their packets are dropped). */
  partition(name: string): Promise<void>;
  heal(name: string): Promise<void>;
  destroy(): Promise<void>;
  /** The same, synchronously: for a signal handler, where nothing asynchronous runs any more. */
  destroySync(): void;
}

/**
 * Why namespaces cannot be made here, or undefined when they can: the probe creates and deletes one namespace.
 * Only a permission failure is a reason to skip; anything else is thrown.
 */
export async function namespacesUnavailable(): Promise<string | undefined> {
  const probe = `phx${randomBytes(3).toString('hex')}p`;
  try {
    await ip('netns', 'add', probe);
  } catch (e) {
    const text = String((e as { stderr?: string }).stderr ?? e);
    if (/Operation not permitted|Permission denied|EPERM|EACCES/i.test(text))
      return `network namespaces are not permitted here (ip netns add: ${text.trim()}); run as root`;
    throw e;
  }
  await ip('netns', 'del', probe);
  return undefined;
}

export async function createLab(names: string[]): Promise<Lab> {
  if (names.length > 250) throw new Error('a lab holds at most 250 hosts');
  const id = randomBytes(2).toString('hex');
  const bytes = randomBytes(2);
  const net = `10.${200 + (bytes[0] % 50)}.${bytes[1]}`;
  const bridge = `phx${id}br`;
  const hosts = new Map<string, LabHost>();
  const lab: Lab = {
    gateway: `${net}.1`,
    hosts,
    host(name) {
      const h = hosts.get(name);
      if (!h) throw new Error(`no lab host named ${name}`);
      return h;
    },
    async partition(name) {
      await ip('link', 'set', lab.host(name).hostLink, 'down');
    },
    async heal(name) {
      await ip('link', 'set', lab.host(name).hostLink, 'up');
    },
    destroySync() {
      const quiet = (...args: string[]) => {
        try {
          execFileSync('ip', args, { stdio: 'ignore' });
        } catch {
          // already gone
        }
      };
      for (const h of hosts.values()) {
        quiet('netns', 'del', h.netns);
        quiet('link', 'del', h.hostLink);
      }
      quiet('link', 'del', bridge);
    },
    async destroy() {
      for (const h of hosts.values()) {
        await ip('netns', 'del', h.netns).catch(() => undefined);
        await ip('link', 'del', h.hostLink).catch(() => undefined);
      }
      await ip('link', 'del', bridge).catch(() => undefined);
    },
  };
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${lab.gateway}/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (const [i, name] of names.entries()) {
      const h: LabHost = {
        name,
        netns: `phx${id}-${name}`,
        address: `${net}.${i + 2}`,
        hostLink: `phx${id}h${i}`,
      };
      const inner = `phx${id}n${i}`;
      await ip('netns', 'add', h.netns);
      hosts.set(name, h);
      await ip('link', 'add', h.hostLink, 'type', 'veth', 'peer', 'name', inner);
      await ip('link', 'set', inner, 'netns', h.netns);
      await ip('link', 'set', h.hostLink, 'master', bridge);
      await ip('link', 'set', h.hostLink, 'up');
      await ip('-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', inner);
      await ip('-n', h.netns, 'link', 'set', inner, 'up');
      await ip('-n', h.netns, 'link', 'set', 'lo', 'up');
    }
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}
