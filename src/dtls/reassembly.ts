// Reassembly of handshake messages from fragments that may arrive split, out of order or more
// than once (RFC 6347 §4.2.3). Messages are keyed by message_seq. Only a bounded window of
// sequence numbers past the next expected one is buffered, so a peer cannot make us allocate
// without limit.

import type { HandshakeFragment } from './messages.js';

/** Handshake messages of a PSK handshake are a few hundred bytes; anything far larger is bogus. */
export const MAX_HANDSHAKE_MESSAGE_LENGTH = 16 * 1024;
/** How many message_seq values past the next expected one are buffered. */
export const REASSEMBLY_WINDOW = 8;

export interface HandshakeMessage {
  type: number;
  messageSeq: number;
  body: Buffer;
}

interface PartialMessage {
  type: number;
  body: Buffer;
  /** One flag per body byte: filled or not. Messages are small, so a byte map is simplest. */
  filled: Uint8Array;
  filledCount: number;
}

export type FragmentVerdict = 'buffered' | 'old' | 'ahead' | 'inconsistent' | 'oversized';

export class HandshakeReassembler {
  private readonly partial = new Map<number, PartialMessage>();
  private nextSeq = 0;

  /** The message_seq the caller will take next. */
  get expectedSeq(): number {
    return this.nextSeq;
  }

  /** Buffers a fragment. 'old' means a retransmission of a message that was already taken. */
  add(fragment: HandshakeFragment): FragmentVerdict {
    if (fragment.messageSeq < this.nextSeq) return 'old';
    if (fragment.messageSeq >= this.nextSeq + REASSEMBLY_WINDOW) return 'ahead';
    if (fragment.length > MAX_HANDSHAKE_MESSAGE_LENGTH) return 'oversized';

    let message = this.partial.get(fragment.messageSeq);
    if (message === undefined) {
      message = {
        type: fragment.type,
        body: Buffer.alloc(fragment.length),
        filled: new Uint8Array(fragment.length),
        filledCount: 0,
      };
      this.partial.set(fragment.messageSeq, message);
    } else if (message.type !== fragment.type || message.body.length !== fragment.length) {
      return 'inconsistent';
    }

    fragment.body.copy(message.body, fragment.fragmentOffset);
    for (let i = fragment.fragmentOffset; i < fragment.fragmentOffset + fragment.body.length; i++) {
      if (message.filled[i] === 0) {
        message.filled[i] = 1;
        message.filledCount++;
      }
    }
    return 'buffered';
  }

  /** Removes and returns the message at the expected message_seq once all of its bytes arrived. */
  takeNext(): HandshakeMessage | undefined {
    const message = this.partial.get(this.nextSeq);
    if (message === undefined || message.filledCount < message.body.length) return undefined;
    this.partial.delete(this.nextSeq);
    return { type: message.type, messageSeq: this.nextSeq++, body: message.body };
  }
}
