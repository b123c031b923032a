// Reading secrets from standard input for --passwd-on-stdin.

import type { Readable } from 'node:stream';
import { AcvpnError } from '../core/errors.js';

// Far more than any login requests, so a runaway producer (`yes | acvpn ...`) cannot fill memory.
const maxStdinBytes = 64 * 1024;

/**
 * Reads standard input to its end and returns its lines (CR LF or LF), without the trailing empty
 * line. The headend requests secrets one at a time, and each line fills the next secret field.
 */
export async function readStdinLines(input: Readable): Promise<string[]> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    total += bytes.length;
    if (total > maxStdinBytes) {
      throw new AcvpnError('USAGE', `standard input is longer than ${maxStdinBytes} bytes; --passwd-on-stdin expects one line per secret`);
    }
    chunks.push(bytes);
  }
  const lines = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}
