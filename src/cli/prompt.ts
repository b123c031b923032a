// Prompts on the controlling terminal, used only when acvpn runs interactively (a TTY on stdin and
// no --non-interactive). Secret fields are read without echo.

import { createInterface } from 'node:readline';

export async function promptOnTerminal(field: { name: string; label: string; secret: boolean; message?: string }): Promise<string> {
  const input = process.stdin;
  const output = process.stderr;
  if (field.message) output.write(`${field.message}\n`);

  const readline = createInterface({ input, output, terminal: true });
  // Replace what readline echoes with nothing while a secret is typed.
  const originalWrite = (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput;
  if (field.secret) {
    (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = (text: string) => {
      if (text.includes(field.label)) output.write(text);
    };
  }
  try {
    return await new Promise<string>((resolve) => readline.question(`${field.label} `, resolve));
  } finally {
    (readline as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = originalWrite;
    if (field.secret) output.write('\n');
    readline.close();
  }
}
