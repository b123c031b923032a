// A lossy, reordering UDP relay on loopback for DTLS tests. Drops and delays come from a seeded
// generator, so one seed gives one pattern per datagram index (timing can still change which
// datagram gets which index). Everything is bounded: the relay forwards at most maxDatagrams and
// keeps at most one timer per delayed datagram. close() clears them all.
//
//   client ──► relay (127.0.0.1:port) ──► 127.0.0.1:targetPort
//   client ◄── relay ◄──────────────────── target

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface UdpRelayOptions {
  targetPort: number;
  seed: number;
  /** Probability that a datagram is dropped, each direction (0 to 1). */
  lossRate: number;
  /** Probability that a datagram is held back by up to maxDelayMs, so later ones overtake it. */
  reorderRate: number;
  maxDelayMs: number;
  /** The relay stops forwarding after this many datagrams in total. */
  maxDatagrams: number;
}

export interface UdpRelayStats {
  forwarded: number;
  dropped: number;
  delayed: number;
}

export interface UdpRelay {
  port: number;
  stats: UdpRelayStats;
  close(): Promise<void>;
}

/** mulberry32: a small seeded generator, good enough to pick drops; returns [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

async function bindLoopback(socket: Socket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

export async function startUdpRelay(options: UdpRelayOptions): Promise<UdpRelay> {
  const random = seededRandom(options.seed);
  const stats: UdpRelayStats = { forwarded: 0, dropped: 0, delayed: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  let client: RemoteInfo | undefined;
  let closed = false;

  const forward = (send: () => void): void => {
    if (closed || stats.forwarded + stats.dropped >= options.maxDatagrams) return;
    if (random() < options.lossRate) {
      stats.dropped++;
      return;
    }
    stats.forwarded++;
    if (random() < options.reorderRate) {
      stats.delayed++;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!closed) send();
      }, 1 + Math.floor(random() * options.maxDelayMs));
      timers.add(timer);
      return;
    }
    send();
  };

  await bindLoopback(front);
  await bindLoopback(back);
  front.on('message', (datagram, source) => {
    client = source;
    forward(() => back.send(datagram, options.targetPort, '127.0.0.1'));
  });
  back.on('message', (datagram) => {
    const destination = client;
    if (destination === undefined) return;
    forward(() => front.send(datagram, destination.port, destination.address));
  });

  return {
    port: front.address().port,
    stats,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all([new Promise<void>((resolve) => front.close(() => resolve())), new Promise<void>((resolve) => back.close(() => resolve()))]);
    },
  };
}
