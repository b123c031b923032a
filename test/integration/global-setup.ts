// Compiles src/ before the integration tests, which run the built CLI (bin/acvpn.js -> dist/),
// so that a test never runs stale code after `npx vitest` without `npm run build`.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(process.execPath, [`${root}/node_modules/typescript/bin/tsc`, '-p', `${root}/tsconfig.json`], { stdio: 'inherit' });
  if (!existsSync(`${root}/native/build/Release/acvpn_tun.node`)) {
    throw new Error('the TUN addon is not built; run npm run build:native');
  }
}
