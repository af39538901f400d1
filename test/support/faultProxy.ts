/**
 * A fault-injecting TCP proxy (pure `net`): forwards every connection to its listen address on to a target, and on
 * command delays each chunk, stalls (holds every chunk until the stall ends), or resets every open connection. It
 * stands in for netem, which this kernel lacks. Chunks keep their order in each direction: a chunk waits for the
 * one before it, so latency adds to each chunk without reordering the stream.
 */
import net from 'node:net';

export interface FaultProxy {
  address: string;
  port: number;
  /** Delay added to every chunk in both directions (0 = none). */
  setLatency(ms: number): void;
  /** Forward nothing for `ms` (chunks are held, then delivered in order). */
  stall(ms: number): void;
  /** Destroy every open connection (both sides see a reset). Returns how many there were. */
  resetAll(): number;
  /** Down: reset every open connection and reset each new one at once (the target looks unreachable). Up: forward again. */
  setDown(down: boolean): void;
  /**
   * Calls `fn` with the sending host's address and the size of every chunk from a client towards the target,
   * before the chunk is forwarded: a `resetFrom` inside `fn` drops that chunk.
   */
  onClientChunk(fn: ((from: string, bytes: number) => void) | undefined): void;
  /** Reset the open connections of clients whose address ends with `from`. Returns how many there were. */
  resetFrom(from: string): number;
  /** Connections reset so far. */
  resets(): number;
  close(): Promise<void>;
}

export async function startFaultProxy(
  listen: { host: string; port?: number },
  target: { host: string; port: number },
): Promise<FaultProxy> {
  let latency = 0;
  let stalledUntil = 0;
  let resetCount = 0;
  let down = false;
  const open = new Set<net.Socket>();
  /** Each client socket with its upstream. */
  const pairs = new Map<net.Socket, net.Socket>();
  let watcher: ((from: string, bytes: number) => void) | undefined;

  const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
  /** One direction of a connection: chunks go out in order, each after the latency and any stall. */
  function pipe(from: net.Socket, to: net.Socket): void {
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      const arrived = Date.now();
      chain = chain.then(async () => {
        const due = Math.max(arrived + latency, stalledUntil);
        if (due > Date.now()) await wait(due - Date.now());
        while (stalledUntil > Date.now()) await wait(stalledUntil - Date.now());
        if (!to.destroyed) to.write(chunk);
      });
    });
    from.on('end', () => {
      chain = chain.then(() => {
        if (!to.destroyed) to.end();
      });
    });
  }

  const server = net.createServer((client) => {
    if (down) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    open.add(client);
    open.add(upstream);
    pairs.set(client, upstream);
    const drop = () => {
      open.delete(client);
      open.delete(upstream);
      pairs.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    const from = client.remoteAddress ?? '';
    client.on('data', (chunk: Buffer) => watcher?.(from, chunk.length));
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port ?? 0, listen.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  function resetAll(): number {
    const n = open.size / 2;
    for (const s of [...open]) s.resetAndDestroy();
    resetCount += n;
    return n;
  }
  return {
    address: `${listen.host}:${port}`,
    port,
    setLatency(ms) {
      latency = ms;
    },
    stall(ms) {
      stalledUntil = Math.max(stalledUntil, Date.now() + ms);
    },
    resetAll,
    resetFrom(from) {
      let n = 0;
      for (const [client, upstream] of [...pairs]) {
        if (!(client.remoteAddress ?? '').endsWith(from)) continue;
        client.resetAndDestroy();
        upstream.resetAndDestroy();
        n++;
      }
      resetCount += n;
      return n;
    },
    setDown(value) {
      down = value;
      if (down) resetAll();
    },
    onClientChunk(fn) {
      watcher = fn;
    },
    resets: () => resetCount,
    close() {
      for (const s of [...open]) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
