import { describe, expect, it } from 'vitest';

import { AcvpnError } from '../../../src/core/errors.js';
import { redactText } from '../../../src/core/redact.js';
import { appIdToSessionId, derivePsk, PSK_EXPORTER_LABEL } from '../../../src/dtls/psk.js';

describe('appIdToSessionId', () => {
  it('decodes hex of 1 to 32 bytes', () => {
    expect(appIdToSessionId('0a').toString('hex')).toBe('0a');
    expect(appIdToSessionId(' DEADBEEF ').toString('hex')).toBe('deadbeef');
    expect(appIdToSessionId('ab'.repeat(32))).toHaveLength(32);
  });

  it.each(['', 'abc', 'zz', 'ab'.repeat(33), '0x12'])('rejects %j', (value) => {
    let error: unknown;
    try {
      appIdToSessionId(value);
    } catch (caught) {
      error = caught;
    }
    expect(AcvpnError.is(error)).toBe(true);
    expect((error as AcvpnError).code).toBe('CSTP_HEADER_INVALID');
  });
});

describe('derivePsk', () => {
  it('calls the exporter with no context and registers the key as secret', () => {
    const calls: unknown[][] = [];
    const key = Buffer.alloc(32, 0xa5);
    const socket = {
      exportKeyingMaterial(...args: unknown[]): Buffer {
        calls.push(args);
        return key;
      },
    };
    expect(derivePsk(socket as never)).toBe(key);
    expect(calls).toEqual([[32, PSK_EXPORTER_LABEL, undefined]]);
    expect(redactText(`key ${key.toString('hex')}`)).not.toContain(key.toString('hex'));
  });

  it('turns an exporter failure into TLS_FAILED', () => {
    const socket = {
      exportKeyingMaterial(): Buffer {
        throw new Error('TLS socket connection must be securely established');
      },
    };
    expect(() => derivePsk(socket as never)).toThrow(expect.objectContaining({ code: 'TLS_FAILED' }));
  });
});
