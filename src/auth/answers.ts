// Who answers each form field. The rules, in the order they are tried:
//
//   any named field     --form-entry NAME=VALUE (formEntries)
//   user name field     --user (sources.username), then the value the headend pre-filled, then a prompt
//   other text field    the value the headend pre-filled, then a prompt
//   password field      the next --passwd-on-stdin line, then ACVPN_PASSWORD (first password of the
//                       login only), then a prompt
//   hidden field        its value, unchanged
//
// Without a prompt (non-interactive), a field nobody answers raises AUTH_ANSWER_MISSING naming the
// flag that provides it. The prompt function is injected, so this module does no I/O itself.

import { AcvpnError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import type { AuthForm, FormInput, FormOption, FormSelect } from './form.js';

export interface PromptField {
  name: string;
  label: string;
  secret: boolean;
  /** The form's message, e.g. "Please enter your password." */
  message?: string;
  /** For a choice: the labels to pick from. The answer may be a label or a value. */
  options?: string[];
}

export interface AnswerSources {
  /** --user */
  username?: string;
  /** --authgroup */
  group?: string;
  /** --form-entry NAME=VALUE, by input name. */
  formEntries: Map<string, string>;
  /** --passwd-on-stdin lines, consumed in order, one per password field the headend asks for. */
  secretLines: string[];
  /** ACVPN_PASSWORD: answers the first password field of the login. */
  envPassword?: string;
  interactive: boolean;
  prompt?: (field: PromptField) => Promise<string>;
}

export interface FillContext {
  /** The group option in force, for its second-auth and noaaa flags. */
  group?: FormOption;
  /**
   * True when the headend rejected the previous answer (the form carries an <error>). Fixed
   * answers (--form-entry, ACVPN_PASSWORD) for secret fields are then not sent again, and a
   * secret field without another source raises AUTH_REJECTED with the headend's error text.
   */
  retryAfterError: boolean;
}

export class FormAnswerer {
  private readonly secretLines: string[];
  private passwordsAnswered = 0;
  /** The user name sent most recently, for error messages (a user name is not a secret). */
  lastUsername: string | undefined;

  constructor(private readonly sources: AnswerSources) {
    this.secretLines = [...sources.secretLines];
    for (const line of this.secretLines) registerSecret(line);
    registerSecret(sources.envPassword);
  }

  get canPrompt(): boolean {
    return this.sources.interactive && this.sources.prompt !== undefined;
  }

  /** Returns [input name, value] pairs for every input of `form` that is sent back, in form order. */
  async fill(form: AuthForm, context: FillContext): Promise<Array<[string, string]>> {
    const fields: Array<[string, string]> = [];
    const usernameInput = findUsernameInput(form);

    for (const input of form.inputs) {
      if (!isSentBack(input, context.group)) continue;
      let value: string;
      if (input.type === 'hidden') value = input.value ?? '';
      else if (input.type === 'password') value = await this.answerPassword(input, form, context);
      else value = await this.answerText(input, input === usernameInput, form);
      fields.push([input.name, value]);
    }

    for (const select of form.selects) {
      if (select.name === 'group_list') continue;
      fields.push([select.name, await this.answerSelect(select, form)]);
    }
    return fields;
  }

  private async answerText(input: FormInput, isUsername: boolean, form: AuthForm): Promise<string> {
    const value =
      this.sources.formEntries.get(input.name) ??
      (isUsername ? this.sources.username : undefined) ??
      nonEmpty(input.value) ??
      (await this.prompt(input, false, form));
    if (value === undefined) throw missingAnswer(input, form, isUsername ? '--user' : undefined);
    if (isUsername) this.lastUsername = value;
    return value;
  }

  private async answerPassword(input: FormInput, form: AuthForm, context: FillContext): Promise<string> {
    const fixed = context.retryAfterError ? undefined : this.sources.formEntries.get(input.name);
    const firstPassword = this.passwordsAnswered === 0 && !context.retryAfterError;
    const value =
      fixed ??
      this.secretLines.shift() ??
      (firstPassword ? this.sources.envPassword : undefined) ??
      (await this.prompt(input, true, form));

    if (value === undefined) {
      if (context.retryAfterError) throw rejectedAfterError(form, this.lastUsername);
      const flags = firstPassword ? '--passwd-on-stdin, ACVPN_PASSWORD' : '--passwd-on-stdin (one line per password, in the order the headend asks)';
      throw missingAnswer(input, form, flags);
    }
    registerSecret(value);
    this.passwordsAnswered += 1;
    return value;
  }

  // A select other than the group list: --form-entry (label or value), a prompt, else the
  // option the headend marked selected, else the first.
  private async answerSelect(select: FormSelect, form: AuthForm): Promise<string> {
    const entry = this.sources.formEntries.get(select.name);
    if (entry !== undefined) return matchChoice(select, entry, '--form-entry').value;

    if (this.canPrompt && select.options.length > 1) {
      return matchChoice(select, await this.promptChoice(select, form), 'the answer').value;
    }
    const fallback = select.options.find((option) => option.selected) ?? select.options[0];
    return fallback?.value ?? '';
  }

  private async prompt(input: FormInput, secret: boolean, form: AuthForm): Promise<string | undefined> {
    if (!this.canPrompt || this.sources.prompt === undefined) return undefined;
    return this.sources.prompt({
      name: input.name,
      label: input.label ?? input.name,
      secret,
      ...(form.message === undefined ? {} : { message: form.message }),
    });
  }

  /** Asks the user to pick one option of `select`; the caller matches the answer. */
  async promptChoice(select: FormSelect, form: AuthForm): Promise<string> {
    if (this.sources.prompt === undefined) throw new AcvpnError('INTERNAL', 'promptChoice called without a prompt function');
    return this.sources.prompt({
      name: select.name,
      label: select.label ?? select.name,
      secret: false,
      ...(form.message === undefined ? {} : { message: form.message }),
      options: select.options.map((option) => option.label),
    });
  }
}

/** Finds the option whose value, else whose label, equals `name` exactly (after entity decoding). */
export function findOption(select: FormSelect, name: string): FormOption | undefined {
  return select.options.find((option) => option.value === name) ?? select.options.find((option) => option.label === name);
}

function matchChoice(select: FormSelect, name: string, source: string): FormOption {
  const option = findOption(select, name);
  if (option !== undefined) return option;
  throw new AcvpnError(
    'AUTH_ANSWER_MISSING',
    `${source} ${JSON.stringify(name)} for ${select.label ?? select.name} matches none of the choices ${describeOptions(select)}; give one of them with --form-entry ${select.name}=VALUE`,
    { field: select.name },
  );
}

/** Lists the options as `"label"`, or `"label" (value)` when the value differs. */
export function describeOptions(select: FormSelect): string {
  return select.options
    .map((option) => (option.value === option.label ? JSON.stringify(option.label) : `${JSON.stringify(option.label)} (${JSON.stringify(option.value)})`))
    .join(', ');
}

// ASA hides second-auth inputs unless the group asks for them, and noaaa groups need no
// credentials. Submit, reset and unknown input types are never sent.
function isSentBack(input: FormInput, group: FormOption | undefined): boolean {
  if (input.type !== 'text' && input.type !== 'password' && input.type !== 'hidden') return false;
  if (input.secondAuth === true && group?.secondAuth !== true) return false;
  if (group?.noAaa === true && input.type !== 'hidden') return false;
  return true;
}

// The input named "username", else the first text input of a form that has none by that name.
function findUsernameInput(form: AuthForm): FormInput | undefined {
  return form.inputs.find((input) => input.name === 'username') ?? form.inputs.find((input) => input.type === 'text');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function missingAnswer(input: FormInput, form: AuthForm, flags: string | undefined): AcvpnError {
  const label = input.label ?? input.name;
  const sources = [flags, `--form-entry ${input.name}=VALUE`].filter((flag) => flag !== undefined).join(' or ');
  const message = form.message === undefined ? '' : ` (headend message: ${JSON.stringify(form.message)})`;
  return new AcvpnError(
    'AUTH_ANSWER_MISSING',
    `the headend asks for ${JSON.stringify(label)} (form field ${input.name})${message} and no answer was given in non-interactive mode; provide it with ${sources}`,
    { field: input.name, label },
  );
}

function rejectedAfterError(form: AuthForm, username: string | undefined): AcvpnError {
  const forUser = username === undefined ? '' : ` for user ${JSON.stringify(username)}`;
  return new AcvpnError(
    'AUTH_REJECTED',
    `the headend rejected the credentials${forUser}: ${(form.error ?? 'no reason given').replace(/\.$/, '')}; check the user name and password`,
    { formId: form.id },
  );
}
