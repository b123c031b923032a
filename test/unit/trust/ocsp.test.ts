// OCSP checks against real `openssl ocsp` responders on loopback, plus a TCP server that accepts
// connections and never responds. The certificates name fixed responder URLs; the test transport sends each
// request to the local port chosen for that URL.

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyServerChain, type CertificateDetails } from '../../../src/trust/chain.js';
import {
  buildOcspRequest,
  checkOcsp,
  evaluateOcspResponse,
  httpOcspTransport,
  type OcspResult,
  type OcspTransport,
} from '../../../src/trust/ocsp.js';
import {
  createTestPki,
  INTERMEDIATE_OCSP_URL,
  LEAF_OCSP_URL,
  startOcspResponder,
  TEST_HOST,
  type OcspResponder,
  type TestCertificate,
  type TestPki,
} from '../../integration/helpers/pki.js';

const TIMEOUT_MS = 5000;

let pki: TestPki;
const responders: OcspResponder[] = [];
let rootResponder: OcspResponder;
let delegatedResponder: OcspResponder;
let caSignedResponder: OcspResponder;
let unauthorizedResponder: OcspResponder;
let foreignSignerResponder: OcspResponder;

let silentServer: Server;
const silentSockets = new Set<Socket>();
let silentPort: number;
let errorServer: HttpServer;
let errorPort: number;
let closedPort: number;

beforeAll(async () => {
  pki = await createTestPki();
  const start = async (ca: Parameters<typeof startOcspResponder>[0], signer: TestCertificate) => {
    const responder = await startOcspResponder(ca, signer);
    responders.push(responder);
    return responder;
  };
  rootResponder = await start(pki.root, pki.root);
  delegatedResponder = await start(pki.intermediate, pki.ocspResponder);
  caSignedResponder = await start(pki.intermediate, pki.intermediate);
  unauthorizedResponder = await start(pki.intermediate, pki.unauthorizedResponder);
  foreignSignerResponder = await start(pki.intermediate, pki.otherRoot);

  silentServer = createServer((socket) => {
    silentSockets.add(socket);
    socket.on('close', () => silentSockets.delete(socket));
  });
  silentPort = await listenOnLoopback(silentServer);

  errorServer = createHttpServer((_request, response) => {
    response.writeHead(500).end('responder broken');
  });
  errorPort = await listenOnLoopback(errorServer);

  const closed = createServer();
  closedPort = await listenOnLoopback(closed);
  await new Promise<void>((resolve) => closed.close(() => resolve()));
}, 60_000);

afterAll(async () => {
  await Promise.all(responders.map((responder) => responder.stop()));
  for (const socket of silentSockets) socket.destroy();
  await Promise.all([silentServer, errorServer].filter(Boolean).map((server) => new Promise((resolve) => server.close(resolve))));
  await pki?.cleanup();
});

function listenOnLoopback(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('no TCP address'));
      else resolve(address.port);
    });
  });
}

/** Sends requests for the leaf URL to `leafPort` and for the intermediate URL to the root responder. */
function routedTransport(leafPort: number, requested: string[] = []): OcspTransport {
  return (url, requestDer, signal) => {
    requested.push(url);
    const portByUrl = new Map([
      [LEAF_OCSP_URL, leafPort],
      [INTERMEDIATE_OCSP_URL, rootResponder.port],
    ]);
    const port = portByUrl.get(url);
    if (port === undefined) return Promise.reject(new Error(`unexpected OCSP URL ${url}`));
    return httpOcspTransport(`http://127.0.0.1:${port}/`, requestDer, signal);
  };
}

async function pathFor(leaf: TestCertificate): Promise<CertificateDetails[]> {
  const verdict = await classifyServerChain({
    chainDer: [leaf.der, pki.intermediate.der],
    host: TEST_HOST,
    trustedRootsDer: [pki.root.der],
    importedServerCertsDer: [],
    now: new Date(),
  });
  expect(verdict.chain).toHaveLength(3);
  return verdict.chain;
}

async function check(leaf: TestCertificate, leafPort: number): Promise<OcspResult[]> {
  return checkOcsp(await pathFor(leaf), routedTransport(leafPort), { timeoutMsPerCert: TIMEOUT_MS, now: new Date() });
}

describe('checkOcsp with openssl ocsp', () => {
  it('reports good via delegated responder', async () => {
    const requested: string[] = [];
    const results = await checkOcsp(await pathFor(pki.leaf), routedTransport(delegatedResponder.port, requested), {
      timeoutMsPerCert: TIMEOUT_MS,
      now: new Date(),
    });
    expect(results.map((result) => result.status)).toEqual(['good', 'good', 'not-checked']);
    expect(results[0]?.responderUrl).toBe(LEAF_OCSP_URL);
    expect(results[0]?.nextUpdate).toBeInstanceOf(Date);
    expect(results[2]?.problem).toBe('no-responder');
    expect(requested.sort()).toEqual([LEAF_OCSP_URL, INTERMEDIATE_OCSP_URL].sort());
  });

  it('reports good signed by the CA itself', async () => {
    const results = await check(pki.leaf, caSignedResponder.port);
    expect(results[0]?.status).toBe('good');
  });

  it('reports a revoked leaf', async () => {
    const results = await check(pki.revokedLeaf, delegatedResponder.port);
    const leaf = results[0];
    expect(leaf?.status).toBe('revoked');
    expect(leaf?.revocationReason).toBe('keyCompromise');
    expect(leaf?.revokedAt?.getTime()).toBeLessThanOrEqual(Date.now());
    expect(leaf?.message).toContain('revoked');
    expect(results[1]?.status).toBe('good');
  });

  it('reports a leaf missing from the index as unknown', async () => {
    const results = await check(pki.unlistedLeaf, delegatedResponder.port);
    expect(results[0]?.status).toBe('unknown');
  });

  it('rejects a signer without OCSPSigning', async () => {
    const results = await check(pki.leaf, unauthorizedResponder.port);
    expect(results[0]?.status).toBe('unreachable');
    expect(results[0]?.problem).toBe('unauthorized');
    expect(results[0]?.message).toContain('OCSPSigning');
  });

  it('rejects a signer from another CA', async () => {
    const results = await check(pki.leaf, foreignSignerResponder.port);
    expect(results[0]?.status).toBe('unreachable');
    expect(results[0]?.problem).toBe('unauthorized');
    expect(results[0]?.message).toContain('not issued by the CA');
  });

  it('gives up on a silent responder after the timeout', async () => {
    const started = performance.now();
    const results = await check(pki.leaf, silentPort);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(5000);
    expect(elapsed).toBeLessThan(6500);
    expect(results[0]?.status).toBe('unreachable');
    expect(results[0]?.problem).toBe('timeout');
    expect(results[1]?.status).toBe('good');
  }, 15_000);

  it('stops a transport that ignores the signal', async () => {
    const started = performance.now();
    const stuck: OcspTransport = () => new Promise<Buffer>(() => undefined);
    const results = await checkOcsp(await pathFor(pki.leaf), stuck, { timeoutMsPerCert: 200, now: new Date() });
    expect(performance.now() - started).toBeLessThan(1500);
    expect(results.slice(0, 2).map((result) => result.problem)).toEqual(['timeout', 'timeout']);
  });

  it('reports a refused connection', async () => {
    const results = await check(pki.leaf, closedPort);
    expect(results[0]?.status).toBe('unreachable');
    expect(results[0]?.problem).toBe('transport-error');
  });

  it('reports an HTTP error status', async () => {
    const results = await check(pki.leaf, errorPort);
    expect(results[0]?.problem).toBe('transport-error');
    expect(results[0]?.message).toContain('HTTP status 500');
  });

  it('skips a certificate without known issuer', async () => {
    const leafOnly = (await pathFor(pki.leaf)).slice(0, 1);
    const results = await checkOcsp(leafOnly, routedTransport(delegatedResponder.port), { timeoutMsPerCert: TIMEOUT_MS, now: new Date() });
    expect(results).toHaveLength(1);
    expect(results[0]?.status).toBe('not-checked');
    expect(results[0]?.problem).toBe('issuer-unknown');
  });
});

describe('evaluateOcspResponse', () => {
  async function fetchResponse(): Promise<{ body: Buffer; request: Awaited<ReturnType<typeof buildOcspRequest>> }> {
    const request = await buildOcspRequest(pki.leaf.der, pki.intermediate.der);
    const body = await httpOcspTransport(`http://127.0.0.1:${delegatedResponder.port}/`, request.der, AbortSignal.timeout(TIMEOUT_MS));
    return { body, request };
  }

  it('accepts the response to its own request', async () => {
    const { body, request } = await fetchResponse();
    expect(evaluateOcspResponse(body, request, pki.intermediate.der, new Date()).status).toBe('good');
  });

  it('rejects a response to another nonce', async () => {
    const { body } = await fetchResponse();
    const otherRequest = await buildOcspRequest(pki.leaf.der, pki.intermediate.der);
    const answer = evaluateOcspResponse(body, otherRequest, pki.intermediate.der, new Date());
    expect(answer).toMatchObject({ status: 'unreachable', problem: 'nonce-mismatch' });
  });

  it('rejects a response for another certificate', async () => {
    const { body } = await fetchResponse();
    const otherRequest = await buildOcspRequest(pki.revokedLeaf.der, pki.intermediate.der);
    const answer = evaluateOcspResponse(body, otherRequest, pki.intermediate.der, new Date());
    expect(answer).toMatchObject({ status: 'unreachable', problem: 'bad-response' });
  });

  it('rejects a response past nextUpdate', async () => {
    const { body, request } = await fetchResponse();
    const later = new Date(Date.now() + 60 * 60 * 1000);
    expect(evaluateOcspResponse(body, request, pki.intermediate.der, later)).toMatchObject({ status: 'unreachable', problem: 'stale' });
  });

  it('rejects a response dated in the future', async () => {
    const { body, request } = await fetchResponse();
    const earlier = new Date(Date.now() - 60 * 60 * 1000);
    expect(evaluateOcspResponse(body, request, pki.intermediate.der, earlier)).toMatchObject({ status: 'unreachable', problem: 'stale' });
  });

  it('rejects a tampered signature', async () => {
    const { body, request } = await fetchResponse();
    // The nonce sits inside the signed data; flipping a byte of it breaks the signature but
    // not the DER structure.
    const tampered = Buffer.from(body);
    const nonceAt = tampered.indexOf(request.nonceValue.subarray(2));
    expect(nonceAt).toBeGreaterThan(0);
    tampered[nonceAt] = (tampered[nonceAt] ?? 0) ^ 0xff;
    const answer = evaluateOcspResponse(tampered, request, pki.intermediate.der, new Date());
    expect(answer).toMatchObject({ status: 'unreachable', problem: 'bad-response', message: expect.stringContaining('signature') });
  });

  it('rejects bytes that are not OCSP', async () => {
    const request = await buildOcspRequest(pki.leaf.der, pki.intermediate.der);
    const answer = evaluateOcspResponse(Buffer.from('<html>proxy login</html>'), request, pki.intermediate.der, new Date());
    expect(answer).toMatchObject({ status: 'unreachable', problem: 'bad-response' });
  });

  it('reports a responder error status', async () => {
    const request = await buildOcspRequest(pki.leaf.der, pki.intermediate.der);
    // OCSPResponse { responseStatus tryLater(3) } without responseBytes.
    const tryLater = Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]);
    const answer = evaluateOcspResponse(tryLater, request, pki.intermediate.der, new Date());
    expect(answer).toMatchObject({ status: 'unreachable', problem: 'bad-response', message: expect.stringContaining('tryLater') });
  });
});
