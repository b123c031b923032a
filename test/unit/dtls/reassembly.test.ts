import { describe, expect, it } from 'vitest';

import {
  encodeHandshakeFragment,
  encodeHandshakeMessage,
  fragmentHandshakeMessage,
  HandshakeType,
  parseHandshakeFragments,
  type HandshakeFragment,
} from '../../../src/dtls/messages.js';
import { HandshakeReassembler, MAX_HANDSHAKE_MESSAGE_LENGTH, REASSEMBLY_WINDOW } from '../../../src/dtls/reassembly.js';

const body = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256));

function fragmentsOf(messageSeq: number, size: number): HandshakeFragment[] {
  const wire = Buffer.concat(fragmentHandshakeMessage(HandshakeType.SERVER_HELLO, messageSeq, body, size));
  return parseHandshakeFragments(wire)!;
}

describe('fragmentHandshakeMessage', () => {
  it.each([1, 7, 64, 299, 300, 1000])('splits 300 bytes into %i-byte pieces', (size) => {
    const fragments = fragmentsOf(0, size);
    expect(fragments).toHaveLength(Math.ceil(300 / size));
    expect(Buffer.concat(fragments.map((fragment) => fragment.body)).equals(body)).toBe(true);
    for (const fragment of fragments) expect(fragment.length).toBe(300);
  });

  it('encodes an empty message as one fragment', () => {
    const wire = fragmentHandshakeMessage(HandshakeType.SERVER_HELLO_DONE, 3, Buffer.alloc(0), 10);
    expect(wire).toEqual([encodeHandshakeMessage(HandshakeType.SERVER_HELLO_DONE, 3, Buffer.alloc(0))]);
    expect(wire[0]!.toString('hex')).toBe('0e0000000003000000000000');
  });
});

describe('parseHandshakeFragments', () => {
  it('rejects a fragment beyond the message length', () => {
    const bad = encodeHandshakeFragment(HandshakeType.FINISHED, 0, Buffer.alloc(12), 0, 12);
    bad.writeUIntBE(4, 1, 3); // length 4 < fragment_length 12
    expect(parseHandshakeFragments(bad)).toBeNull();
  });

  it('rejects a cut header', () => {
    expect(parseHandshakeFragments(Buffer.alloc(5))).toBeNull();
  });
});

describe('HandshakeReassembler', () => {
  it.each([1, 5, 33, 128, 300])('rebuilds a message from shuffled %i-byte fragments with duplicates', (size) => {
    const reassembler = new HandshakeReassembler();
    const fragments = fragmentsOf(0, size);
    const shuffled = [...fragments.filter((_, i) => i % 2 === 1), ...fragments.filter((_, i) => i % 2 === 0).reverse(), fragments[0]!];
    for (const fragment of shuffled.slice(0, -2)) reassembler.add(fragment);
    if (fragments.length > 1) expect(reassembler.takeNext()).toBeUndefined();
    for (const fragment of shuffled.slice(-2)) reassembler.add(fragment);

    const message = reassembler.takeNext();
    expect(message?.type).toBe(HandshakeType.SERVER_HELLO);
    expect(message?.body.equals(body)).toBe(true);
    expect(reassembler.expectedSeq).toBe(1);
    expect(reassembler.add(fragments[0]!)).toBe('old');
  });

  it('fills a message from overlapping fragments', () => {
    const reassembler = new HandshakeReassembler();
    reassembler.add({ type: 2, length: 300, messageSeq: 0, fragmentOffset: 0, body: body.subarray(0, 200) });
    reassembler.add({ type: 2, length: 300, messageSeq: 0, fragmentOffset: 150, body: body.subarray(150, 299) });
    expect(reassembler.takeNext()).toBeUndefined();
    reassembler.add({ type: 2, length: 300, messageSeq: 0, fragmentOffset: 298, body: body.subarray(298) });
    expect(reassembler.takeNext()?.body.equals(body)).toBe(true);
  });

  it('delivers messages in message_seq order', () => {
    const reassembler = new HandshakeReassembler();
    for (const fragment of fragmentsOf(1, 100)) reassembler.add(fragment);
    expect(reassembler.takeNext()).toBeUndefined();
    for (const fragment of fragmentsOf(0, 100)) reassembler.add(fragment);
    expect(reassembler.takeNext()?.messageSeq).toBe(0);
    expect(reassembler.takeNext()?.messageSeq).toBe(1);
    expect(reassembler.takeNext()).toBeUndefined();
  });

  it('rejects inconsistent, oversized and far-ahead fragments', () => {
    const reassembler = new HandshakeReassembler();
    reassembler.add({ type: 2, length: 300, messageSeq: 0, fragmentOffset: 0, body: body.subarray(0, 10) });
    expect(reassembler.add({ type: 2, length: 301, messageSeq: 0, fragmentOffset: 10, body: body.subarray(10, 20) })).toBe('inconsistent');
    expect(reassembler.add({ type: 14, length: 300, messageSeq: 0, fragmentOffset: 10, body: body.subarray(10, 20) })).toBe('inconsistent');
    expect(reassembler.add({ type: 2, length: MAX_HANDSHAKE_MESSAGE_LENGTH + 1, messageSeq: 1, fragmentOffset: 0, body: Buffer.alloc(1) })).toBe('oversized');
    expect(reassembler.add({ type: 2, length: 1, messageSeq: REASSEMBLY_WINDOW, fragmentOffset: 0, body: Buffer.alloc(1) })).toBe('ahead');
  });
});
