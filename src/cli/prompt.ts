// Prompts on the controlling terminal, used only when acvpn runs interactively (a TTY on stdin and
// no --non-interactive). Secret fields are read without echo.

import { createInterface, type Interface } from 'node:readline';
import { AcvpnError } from '../core/errors.js';

let activePrompt: { readline: Interface; cancel: () => void } | undefined;

/**
 * Ends the prompt on screen, if any, as cancelled. Called on SIGINT and SIGTERM, because a prompt
 * waiting for a line would otherwise keep acvpn alive (and the terminal without echo).
 */
export function cancelActivePrompt(): void {
  activePrompt?.cancel();
}

function cancelledError(): AcvpnError {
  return new AcvpnError('AUTH_ANSWER_MISSING', 'the login was cancelled at a prompt');
}

export async function promptOnTerminal(field: { name: string; label: string; secret: boolean; message?: string; options?: string[] }): Promise<string> {
  const input = process.stdin;
  const output = process.stderr;
  if (field.message) output.write(`${field.message}\n`);
  if (field.options !== undefined && field.options.length > 0) {
    output.write(`Choices: ${field.options.map((option) => JSON.stringify(option)).join(', ')}\n`);
  }

  const readline = createInterface({ input, output, terminal: true });
  // Replace what readline echoes with nothing while a secret is typed.
  const originalWrite = (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput;
  if (field.secret) {
    (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = (text: string) => {
      if (text.includes(field.label)) output.write(text);
    };
  }
  try {
    return await new Promise<string>((resolve, reject) => {
      const cancel = (): void => reject(cancelledError());
      activePrompt = { readline, cancel };
      // Ctrl-C at the prompt reaches readline, not the process: end the login like a SIGINT would.
      readline.on('SIGINT', () => {
        process.kill(process.pid, 'SIGINT');
        cancel();
      });
      readline.question(`${field.label} `, resolve);
    });
  } finally {
    activePrompt = undefined;
    (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = originalWrite;
    if (field.secret) output.write('\n');
    readline.close();
  }
}

// An unanswered decision request means abort, so a forgotten terminal never leaves a half-trusted
// connection waiting.
const trustAnswerTimeoutMs = 120_000;

/** Shows the "Untrusted VPN Server" request on the terminal and reads one of the allowed answers. */
export async function promptTrustDecision(
  details: { title: string; message: string; host: string; leaf: { subject: string; issuer: string; fingerprintSha256: string; validTo: Date } },
  allowed: string[],
): Promise<'abort' | 'continue' | 'import-and-continue' | 'change-setting'> {
  const output = process.stderr;
  output.write(`\n${details.title}: ${details.host}\n${details.message}\n`);
  output.write(`  subject:     ${details.leaf.subject}\n  issuer:      ${details.leaf.issuer}\n`);
  output.write(`  valid until: ${details.leaf.validTo.toISOString()}\n  SHA-256:     ${details.leaf.fingerprintSha256}\n`);
  const readline = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('abort'), trustAnswerTimeoutMs);
      activePrompt = { readline, cancel: () => resolve('abort') };
      readline.on('SIGINT', () => {
        process.kill(process.pid, 'SIGINT');
        resolve('abort');
      });
      readline.question(`Answer (${allowed.join(', ')}) [abort]: `, (text) => {
        clearTimeout(timer);
        resolve(text.trim() || 'abort');
      });
    });
    return allowed.includes(answer) ? (answer as 'abort' | 'continue' | 'import-and-continue' | 'change-setting') : 'abort';
  } finally {
    activePrompt = undefined;
    readline.close();
  }
}
