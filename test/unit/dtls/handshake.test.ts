import { describe, expect, it } from 'vitest';

import { AcvpnError } from '../../../src/core/errors.js';
import { DtlsClient, type DtlsClientOptions, type DtlsEvent, type DtlsOutput } from '../../../src/dtls/handshake.js';
import { ContentType, parseRecords, SEAL_HEADROOM, SEAL_TAILROOM } from '../../../src/dtls/record.js';
import { CipherSuiteId, FIPS_SUITES } from '../../../src/dtls/suites.js';
import { FakeDtlsServer, type FakeServerOptions } from './fake-server.js';

const PSK = Buffer.alloc(32, 0x77);
const APP_ID = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

class FakeClock {
  time = 5_000;
  now = (): number => this.time;
}

function makeClient(clock: FakeClock, options: Partial<DtlsClientOptions> = {}): DtlsClient {
  return new DtlsClient({ psk: PSK, sessionId: APP_ID, mtu: 1400, now: clock.now, ...options });
}

/** Carries datagrams between client and server until both are quiet; `network` may drop or reorder. */
function exchange(
  client: DtlsClient,
  server: FakeDtlsServer,
  first: DtlsOutput,
  network: (toClient: Buffer[]) => Buffer[] = (datagrams) => datagrams,
  sentByClient: Buffer[] = [],
): DtlsEvent[] {
  const events = [...first.events];
  let toServer = first.datagrams;
  for (let round = 0; round < 20 && toServer.length > 0; round++) {
    sentByClient.push(...toServer);
    const toClient = network(toServer.flatMap((datagram) => server.receive(datagram)));
    toServer = [];
    for (const datagram of toClient) {
      const output = client.receive(datagram);
      events.push(...output.events);
      toServer.push(...output.datagrams);
    }
  }
  return events;
}

function kinds(events: DtlsEvent[]): string[] {
  return events.map((event) => event.kind);
}

function failedError(events: DtlsEvent[]): AcvpnError {
  const failed = events.find((event) => event.kind === 'failed');
  if (failed?.kind !== 'failed') throw new Error(`no failed event in ${kinds(events).join(', ')}`);
  return failed.error;
}

function handshake(serverOptions: Partial<FakeServerOptions> = {}, clientOptions: Partial<DtlsClientOptions> = {}) {
  const clock = new FakeClock();
  const client = makeClient(clock, clientOptions);
  const server = new FakeDtlsServer({ psk: PSK, ...serverOptions });
  const events = exchange(client, server, client.start());
  return { clock, client, server, events };
}

describe('DtlsClient handshake', () => {
  it('completes without HelloVerifyRequest', () => {
    const { client, server, events } = handshake();
    expect(kinds(events)).toEqual(['established']);
    expect(client.state).toBe('established');
    expect(server.clientFinishedOk).toBe(true);
    expect(server.clientHellos).toHaveLength(1);
    expect(server.clientIdentity).toBe('psk');
  });

  it('offers only AES-GCM in FIPS mode', () => {
    const { server } = handshake({}, { suites: [...FIPS_SUITES] });
    expect(server.clientHellos[0]?.suites).toEqual([0x00a9, 0x00a8]);
  });

  it('sends the App-ID as session_id and a plain ClientHello', () => {
    const { server } = handshake();
    const hello = server.clientHellos[0]!;
    expect(hello.version).toBe(0xfefd);
    expect(hello.sessionId.equals(APP_ID)).toBe(true);
    expect(hello.cookie).toHaveLength(0);
    expect(hello.suites).toEqual([0x00a9, 0x00a8, 0xccab]);
    expect([...hello.compressionMethods]).toEqual([0]);
    expect(hello.messageSeq).toBe(0);
  });

  it('answers a HelloVerifyRequest with the cookie', () => {
    const { client, server, events } = handshake({ cookie: true });
    expect(kinds(events)).toEqual(['established']);
    expect(client.state).toBe('established');
    expect(server.clientHellos).toHaveLength(2);
    const second = server.clientHellos[1]!;
    expect(second.cookie.toString()).toBe('c00k1e-for-the-test');
    expect(second.messageSeq).toBe(1);
    expect(second.random.equals(server.clientHellos[0]!.random)).toBe(true);
  });

  it.each([
    ['TLS_PSK_WITH_AES_128_GCM_SHA256', CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256],
    ['TLS_PSK_WITH_AES_256_GCM_SHA384', CipherSuiteId.TLS_PSK_WITH_AES_256_GCM_SHA384],
    ['TLS_PSK_WITH_CHACHA20_POLY1305_SHA256', CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256],
  ])('negotiates %s and carries data both ways', (name, suite) => {
    const { client, server, events } = handshake({ suite });
    expect(events).toEqual([{ kind: 'established', suite: name }]);

    const upstream = client.sealApplicationData(Buffer.from('\x00hello headend'));
    const echoed = server.receive(upstream);
    expect(server.received.map(String)).toEqual(['\x00hello headend']);
    const output = client.receive(echoed[0]!);
    expect(output.events).toEqual([{ kind: 'data', payload: Buffer.from('\x00hello headend') }]);
  });

  it('uses a configured identity and accepts an identity hint', () => {
    const { client, server } = handshake({ identityHint: 'ocserv' }, { identity: 'someone' });
    expect(client.state).toBe('established');
    expect(server.clientIdentity).toBe('someone');
  });

  it('never sends an all-zero random', () => {
    const { server } = handshake({}, { random: () => Buffer.alloc(32) });
    expect(server.clientHellos[0]!.random.some((byte) => byte !== 0)).toBe(true);
  });

  it('seals in place with headroom', () => {
    const { client, server } = handshake();
    const payload = Buffer.from('\x00in place');
    const buffer = Buffer.alloc(SEAL_HEADROOM + payload.length + SEAL_TAILROOM);
    payload.copy(buffer, SEAL_HEADROOM);
    const start = client.sealApplicationDataInPlace(buffer, SEAL_HEADROOM, payload.length);
    server.receive(buffer.subarray(start, SEAL_HEADROOM + payload.length + SEAL_TAILROOM));
    expect(server.received.map(String)).toEqual(['\x00in place']);
  });
});

describe('DtlsClient handshake failures', () => {
  it('fails on a wrong server Finished and sends decrypt_error', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK, corruptFinished: true });
    const events = exchange(client, server, client.start());
    const error = failedError(events);
    expect(error.code).toBe('TLS_FAILED');
    expect(error.message).toContain('Finished');
    expect(client.state).toBe('failed');
    expect(server.alertsReceived).toEqual([[2, 51]]);
  });

  it('times out with a PSK hint when the server drops its Finished', () => {
    const { clock, client, server, events } = handshake({ psk: Buffer.alloc(32, 0x78) });
    expect(events).toEqual([]);
    expect(server.badRecords).toBe(1);
    expect(client.state).toBe('awaiting-server-finished');

    let output = client.tick();
    for (let step = 0; step < 10 && output.nextTimerMs !== undefined; step++) {
      clock.time += output.nextTimerMs;
      output = client.tick();
    }
    const error = failedError(output.events);
    expect(error.code).toBe('NETWORK_UNREACHABLE');
    expect(error.message).toContain('PSK');
  });

  it('fails on a fatal alert during the handshake', () => {
    const client = makeClient(new FakeClock());
    client.start();
    const alert = Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40]);
    const events = client.receive(alert).events;
    expect(events[0]).toEqual({ kind: 'alert', level: 2, description: 40, name: 'handshake_failure' });
    const error = failedError(events);
    expect(error.code).toBe('TLS_FAILED');
    expect(error.message).toContain('handshake_failure');
    expect(client.state).toBe('failed');
  });

  it('rejects a suite it did not offer', () => {
    const { server, events } = handshake(
      { suite: CipherSuiteId.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 },
      { suites: [CipherSuiteId.TLS_PSK_WITH_AES_128_GCM_SHA256] },
    );
    const error = failedError(events);
    expect(error.message).toContain('0xCCAB');
    expect(server.alertsReceived).toEqual([[2, 47]]);
  });

  it('rejects a malformed ServerHello', () => {
    const client = makeClient(new FakeClock());
    client.start();
    // A ServerHello whose body stops after 10 of the 38 required bytes.
    const fragment = Buffer.concat([Buffer.from([2, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 10]), Buffer.alloc(10)]);
    const record = Buffer.concat([Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, fragment.length]), fragment]);
    const output = client.receive(record);
    const error = failedError(output.events);
    expect(error.code).toBe('TLS_FAILED');
    expect(error.message).toContain('ServerHello');
    expect(output.datagrams).toHaveLength(1);
    expect([...output.datagrams[0]!.subarray(13)]).toEqual([2, 50]);
  });

  it('rejects DTLS 1.0', () => {
    const { server, events } = handshake({ serverVersion: 0xfeff });
    expect(failedError(events).message).toContain('DTLS 1.2');
    expect(server.alertsReceived).toEqual([[2, 70]]);
  });

  it('rejects invalid settings', () => {
    const clock = new FakeClock();
    const cases: Array<Partial<DtlsClientOptions>> = [
      { sessionId: Buffer.alloc(33) },
      { mtu: 40 },
      { suites: [0x002f] },
      { suites: [] },
      { psk: Buffer.alloc(0) },
    ];
    for (const options of cases) {
      let error: unknown;
      try {
        makeClient(clock, options);
      } catch (caught) {
        error = caught;
      }
      const label = JSON.stringify(Object.keys(options));
      expect(AcvpnError.is(error), label).toBe(true);
      expect((error as AcvpnError).code, label).toBe('CONFIG_INVALID');
    }
  });
});

describe('DtlsClient over a bad network', () => {
  it('survives reordered and duplicated server records', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK, identityHint: 'hint', fragmentBody: 9 });
    const events = exchange(client, server, client.start(), (datagrams) => [...datagrams, ...datagrams].reverse());
    expect(kinds(events)).toEqual(['established']);
  });

  it('holds the server Finished that arrives before its ChangeCipherSpec', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK });
    const events = exchange(client, server, client.start(), (datagrams) => {
      // Flight 6 is [CCS, Finished]: deliver Finished first.
      const types = datagrams.map((datagram) => datagram[0]);
      return types[0] === ContentType.CHANGE_CIPHER_SPEC ? [...datagrams].reverse() : datagrams;
    });
    expect(kinds(events)).toEqual(['established']);
  });

  it.each([1, 5, 16, 37, 200])('reassembles server messages in %i-byte fragments', (fragmentBody) => {
    const { client, events } = handshake({ fragmentBody, identityHint: 'a longer PSK identity hint for fragmentation' });
    expect(kinds(events)).toEqual(['established']);
    expect(client.state).toBe('established');
  });

  it.each([64, 80, 120])('fragments its own messages to a %i-byte MTU', (mtu) => {
    const clock = new FakeClock();
    const client = makeClient(clock, { mtu, identity: 'x'.repeat(150) });
    const server = new FakeDtlsServer({ psk: PSK });
    const sent: Buffer[] = [];
    const events = exchange(client, server, client.start(), (datagrams) => datagrams, sent);
    expect(kinds(events)).toEqual(['established']);
    // The ClientHello (94 bytes) always leaves whole; the 150-byte identity needs fragments.
    expect(sent[0]).toHaveLength(94);
    expect(parseRecords(sent[0]!).records).toHaveLength(1);
    expect(sent.length).toBeGreaterThan(3);
    for (const datagram of sent.slice(1)) expect(datagram.length).toBeLessThanOrEqual(mtu);
    expect(server.clientIdentity).toBe('x'.repeat(150));
  });

  it('resends flight 5 when the server retransmits ServerHelloDone', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK });
    const flight4 = client.start().datagrams.flatMap((datagram) => server.receive(datagram));
    let flight5: Buffer[] = [];
    for (const datagram of flight4) flight5.push(...client.receive(datagram).datagrams);
    expect(flight5).toHaveLength(1);

    // Flight 5 is lost; the server's timer resends flight 4.
    flight5 = [];
    for (const datagram of server.retransmitLastFlight()) flight5.push(...client.receive(datagram).datagrams);
    expect(flight5).toHaveLength(1);
    const events = flight5.flatMap((datagram) => server.receive(datagram)).flatMap((datagram) => client.receive(datagram).events);
    expect(kinds(events)).toEqual(['established']);
  });
});

describe('DtlsClient retransmission', () => {
  it('backs off 1, 2, 4 s and gives up at 12 s', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const start = client.start();
    expect(start.nextTimerMs).toBe(1000);
    const sendTimes: number[] = [0];
    const firstSequence = parseRecords(start.datagrams[0]!).records[0]!.sequence;

    let output: DtlsOutput = start;
    const startTime = clock.time;
    for (let step = 0; step < 10 && output.nextTimerMs !== undefined; step++) {
      clock.time += output.nextTimerMs;
      output = client.tick();
      if (output.datagrams.length > 0) {
        sendTimes.push(clock.time - startTime);
        const resent = parseRecords(output.datagrams[0]!).records[0]!;
        expect(resent.sequence).toBeGreaterThan(firstSequence);
        expect(resent.fragment.equals(parseRecords(start.datagrams[0]!).records[0]!.fragment)).toBe(true);
      }
    }
    expect(sendTimes).toEqual([0, 1000, 3000, 7000]);
    expect(clock.time - startTime).toBe(12_000);
    const error = failedError(output.events);
    expect(error.code).toBe('NETWORK_UNREACHABLE');
    expect(error.message).toContain('timed out after 12 s');
    expect(client.state).toBe('failed');
    expect(client.tick()).toEqual({ datagrams: [], events: [] });
  });

  it('caps the timeout at the maximum', () => {
    const clock = new FakeClock();
    const client = makeClient(clock, { handshakeTimeoutMs: 300_000, maxRetransmitMs: 60_000 });
    let output = client.start();
    const delays: number[] = [];
    for (let step = 0; step < 9 && output.nextTimerMs !== undefined; step++) {
      delays.push(output.nextTimerMs);
      clock.time += output.nextTimerMs;
      output = client.tick();
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('does nothing when ticked early', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    client.start();
    clock.time += 400;
    const output = client.tick();
    expect(output.datagrams).toHaveLength(0);
    expect(output.nextTimerMs).toBe(600);
  });

  it('recovers when the server flight is lost once', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK, cookie: true });
    const start = client.start();
    // The HelloVerifyRequest is lost: the client resends ClientHello after 1 s.
    for (const datagram of start.datagrams) server.receive(datagram);
    clock.time += start.nextTimerMs!;
    const resent = client.tick();
    expect(resent.datagrams).toHaveLength(1);
    const events = exchange(client, server, resent);
    expect(kinds(events)).toEqual(['established']);
  });

  it('resends flight 5 on the timer when flight 6 is lost', () => {
    const clock = new FakeClock();
    const client = makeClient(clock);
    const server = new FakeDtlsServer({ psk: PSK });
    let lostFlight6 = false;
    const events = exchange(client, server, client.start(), (datagrams) => {
      if (!lostFlight6 && datagrams.some((datagram) => datagram[0] === ContentType.CHANGE_CIPHER_SPEC)) {
        lostFlight6 = true;
        return [];
      }
      return datagrams;
    });
    expect(events).toHaveLength(0);
    expect(client.state).toBe('awaiting-server-finished');

    clock.time += 1000;
    const retry = client.tick();
    const after = exchange(client, server, retry);
    expect(kinds(after)).toEqual(['established']);
    expect(server.flight6Sends).toBe(2);
  });
});

describe('DtlsClient established', () => {
  it('drops forged, replayed and unknown records without failing', () => {
    const { client, server } = handshake();
    const good = server.sealData(Buffer.from('\x00one'));
    expect(kinds(client.receive(good).events)).toEqual(['data']);

    expect(client.receive(good).events).toEqual([]);
    expect(client.counters.replayedRecords).toBe(1);

    const forged = server.sealData(Buffer.from('\x00two'));
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff;
    expect(client.receive(forged).events).toEqual([]);
    expect(client.counters.badRecords).toBe(1);

    const unknown = server.sealRecord(99, Buffer.from('?'));
    expect(client.receive(unknown).events).toEqual([]);
    expect(client.counters.unknownTypeRecords).toBe(1);

    const plaintextAlert = Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 50, 0, 2, 2, 40]);
    expect(client.receive(plaintextAlert).events).toEqual([]);
    expect(client.counters.unexpectedEpochRecords).toBe(1);

    expect(client.receive(Buffer.from([23, 0xfe])).events).toEqual([]);
    expect(client.counters.truncatedDatagrams).toBe(1);

    expect(client.state).toBe('established');
    expect(kinds(client.receive(server.sealData(Buffer.from('\x00three'))).events)).toEqual(['data']);
  });

  it('accepts several records in one datagram', () => {
    const { client, server } = handshake();
    const datagram = Buffer.concat([server.sealData(Buffer.from('a')), server.sealData(Buffer.from('b'))]);
    const payloads = client.receive(datagram).events.map((event) => (event.kind === 'data' ? event.payload.toString() : event.kind));
    expect(payloads).toEqual(['a', 'b']);
  });

  it('closes on close_notify and answers it', () => {
    const { client, server } = handshake();
    const output = client.receive(server.sealRecord(ContentType.ALERT, Buffer.from([1, 0])));
    expect(kinds(output.events)).toEqual(['alert', 'closed']);
    expect(output.datagrams).toHaveLength(1);
    server.receive(output.datagrams[0]!);
    expect(server.alertsReceived).toEqual([[1, 0]]);
    expect(client.state).toBe('closed');
  });

  it('fails on a fatal alert', () => {
    const { client, server } = handshake();
    const events = client.receive(server.sealRecord(ContentType.ALERT, Buffer.from([2, 80]))).events;
    expect(failedError(events).message).toContain('internal_error');
    expect(client.state).toBe('failed');
  });

  it('sends an encrypted close_notify on close', () => {
    const { client, server } = handshake();
    const output = client.close();
    expect(kinds(output.events)).toEqual(['closed']);
    server.receive(output.datagrams[0]!);
    expect(server.alertsReceived).toEqual([[1, 0]]);
    expect(() => client.sealApplicationData(Buffer.from('late'))).toThrow(/not in state closed/);
  });

  it('refuses application data before the handshake', () => {
    const client = makeClient(new FakeClock());
    expect(() => client.sealApplicationData(Buffer.from('early'))).toThrow(AcvpnError);
  });
});
