// Choosing the authentication group from the form's `<select name="group_list">`.
//
// Group names are matched exactly, after entity decoding, first against the option value and then
// against its label. Names may contain spaces, parentheses, "&" and any Unicode text, so there is
// no character check on the client side.

import { AcvpnError } from '../core/errors.js';
import type { AuthForm, FormOption, FormSelect } from './form.js';
import { describeOptions, findOption, type FormAnswerer } from './answers.js';

export const GROUP_SELECT_NAME = 'group_list';

/** Reason for the group choice, logged because "default" picks a group the user never named. */
export type GroupChoiceReason = 'requested' | 'only-option' | 'prompt' | 'default';

export interface GroupChoice {
  option: FormOption;
  reason: GroupChoiceReason;
}

export function findGroupSelect(form: AuthForm): FormSelect | undefined {
  return form.selects.find((select) => select.name === GROUP_SELECT_NAME);
}

/**
 * Chooses the group. A `requested` name must match an option, else AUTH_GROUP_NOT_FOUND. Without
 * one, the choice is the only option, else the user's pick when a prompt is available, else the
 * option the headend marked selected, else the first (ocserv 1.1 lists its default first).
 * Returns undefined for a select without options.
 */
export async function chooseGroup(
  select: FormSelect,
  requested: string | undefined,
  form: AuthForm,
  answerer: FormAnswerer,
): Promise<GroupChoice | undefined> {
  if (requested !== undefined) return { option: requireGroup(select, requested), reason: 'requested' };

  const [firstOption] = select.options;
  if (firstOption === undefined) return undefined;
  if (select.options.length === 1) return { option: firstOption, reason: 'only-option' };

  if (answerer.canPrompt) {
    const answer = await answerer.promptChoice(select, form);
    return { option: requireGroup(select, answer), reason: 'prompt' };
  }
  return { option: select.options.find((option) => option.selected) ?? firstOption, reason: 'default' };
}

/** Returns the option matching `requested`, or raises AUTH_GROUP_NOT_FOUND listing the groups. */
export function requireGroup(select: FormSelect, requested: string): FormOption {
  const option = findOption(select, requested);
  if (option !== undefined) return option;
  const available = select.options.length === 0 ? 'none' : describeOptions(select);
  throw new AcvpnError(
    'AUTH_GROUP_NOT_FOUND',
    `the headend has no group named ${JSON.stringify(requested)}; available groups: ${available}; pass one of them with --authgroup`,
    { group: requested, available: select.options.map((option) => option.label) },
  );
}

/** Returns the group the form currently shows: the option marked selected, else the first. */
export function currentGroup(select: FormSelect): FormOption | undefined {
  return select.options.find((option) => option.selected) ?? select.options[0];
}
