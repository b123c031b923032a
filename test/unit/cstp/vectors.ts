// Loads CONNECT response vectors from test/vectors/cstp: '#' lines are comments, then the status
// line, then one "Name: value" header per line.

import { readFileSync } from 'node:fs';

export interface ResponseVector {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
}

/** A fixed App-ID that tests put in place of the capture's SCRUBBED-HEX. */
export const TEST_APP_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

export function loadResponseVector(fileName: string): ResponseVector {
  const text = readFileSync(new URL(`../../vectors/cstp/${fileName}`, import.meta.url), 'utf8');
  const lines = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));

  const statusMatch = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
  if (statusMatch === null) throw new Error(`${fileName}: first line is not an HTTP status line`);

  const headers = lines.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(':');
    if (colon < 0) throw new Error(`${fileName}: header line without ':': ${line}`);
    const value = line.slice(colon + 1).trim();
    return [line.slice(0, colon), value === 'SCRUBBED-HEX' ? TEST_APP_ID : value];
  });
  return { status: Number(statusMatch[1]), reason: statusMatch[2] ?? '', headers };
}
