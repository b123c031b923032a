import { beforeEach, describe, expect, it } from 'vitest';
import { AuthFlow, type AnswerSources, type AuthFlowOptions, type AuthStep, type HttpRequest, type HttpResponse, type PromptField } from '../../../src/auth/flow.js';
import { AcvpnError } from '../../../src/core/errors.js';
import { clearSecretsForTest, redactText } from '../../../src/core/redact.js';
import { readHttpVector, readVector, testPosture, testUserAgent, xmlResponse } from './vectors.js';

const declaration = '<?xml version="1.0" encoding="UTF-8"?>\n';
const identity =
  '<version who="vpn">v0.1.0</version>' +
  '<device-id platform-version="6.1.0-28-amd64" device-type="x86_64" unique-id="3F2504E04F8911D39A0C0305E82C33013F2504E04F8911D39A0C0305E82C3301">linux-64</device-id>';
const initOpen = `${declaration}<config-auth client="vpn" type="init" aggregate-auth-version="2">${identity}`;
const replyOpen = `${declaration}<config-auth client="vpn" type="auth-reply" aggregate-auth-version="2">${identity}`;

function sources(overrides: Partial<AnswerSources> = {}): AnswerSources {
  return { formEntries: new Map(), secretLines: [], interactive: false, ...overrides };
}

function makeFlow(url: string, answers: AnswerSources, extra: Partial<AuthFlowOptions> = {}): AuthFlow {
  return new AuthFlow({ url: new URL(url), posture: testPosture, userAgent: testUserAgent, answers, ...extra });
}

function expectRequest(step: AuthStep): { request: HttpRequest; newConnection: boolean } {
  if (step.kind !== 'request') throw new Error(`expected a request step, received ${step.kind}`);
  return step;
}

function expectComplete(step: AuthStep): Extract<AuthStep, { kind: 'complete' }> {
  if (step.kind !== 'complete') throw new Error(`expected a complete step, received ${step.kind}`);
  return step;
}

async function expectError(promise: Promise<unknown>): Promise<AcvpnError> {
  try {
    await promise;
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError');
}

function header(request: HttpRequest, name: string): string | undefined {
  return request.headers.find(([key]) => key === name)?.[1];
}

/** Builds the headers every auth request carries, with an X-Pad of `padLength` zeros. */
function expectedHeaders(padLength: number, cookie?: string): Array<[string, string]> {
  return [
    ['User-Agent', testUserAgent],
    ...(cookie === undefined ? [] : [['Cookie', cookie] as [string, string]]),
    ['Accept', '*/*'],
    ['Accept-Encoding', 'identity'],
    ['X-Transcend-Version', '1'],
    ['X-Aggregate-Auth', '1'],
    ['X-AnyConnect-Identifier-ClientVersion', 'v0.1.0'],
    ['X-AnyConnect-Identifier-Platform', 'linux-64'],
    ['X-AnyConnect-Identifier-PlatformVersion', '6.1.0-28-amd64'],
    ['X-AnyConnect-Identifier-DeviceType', 'x86_64'],
    ['X-AnyConnect-Identifier-Device-UniqueID', '3F2504E04F8911D39A0C0305E82C33013F2504E04F8911D39A0C0305E82C3301'],
    ['X-Pad', '0'.repeat(padLength)],
    ['Content-Type', 'application/xml; charset=utf-8'],
  ];
}

const usernameForm = readHttpVector('ocserv-1.1.6/01-username-form.http');
const passwordForm = readHttpVector('ocserv-1.1.6/02-password-form.http');
const ocservComplete = readHttpVector('ocserv-1.1.6/03-complete.http');
const loginFailedForm = readHttpVector('ocserv-1.1.6/04-login-failed-form.http');

beforeEach(() => {
  clearSecretsForTest();
});

describe('AuthFlow against ocserv 1.1.6 responses', () => {
  it('logs in with user name then password', async () => {
    const flow = makeFlow('https://vpn.rig.test:4443', sources({ username: 'alice', secretLines: ['correct horse battery'] }));

    const init = flow.firstRequest();
    expect(init.method).toBe('POST');
    expect(init.path).toBe('/');
    expect(init.body).toBe(`${initOpen}<group-access>https://vpn.rig.test:4443/</group-access></config-auth>\n`);
    expect(Buffer.byteLength(init.body)).toBe(372);
    expect(init.headers).toEqual(expectedHeaders(12));

    // ocserv deletes webvpncontext here, so the next request carries no Cookie header.
    const second = expectRequest(await flow.next(usernameForm));
    expect(second.newConnection).toBe(false);
    expect(second.request.path).toBe('/auth');
    expect(second.request.body).toBe(`${replyOpen}<auth><username>alice</username></auth></config-auth>\n`);
    expect(Buffer.byteLength(second.request.body)).toBe(362);
    expect(second.request.headers).toEqual(expectedHeaders(22));

    const third = expectRequest(await flow.next(passwordForm));
    expect(third.request.path).toBe('/auth');
    expect(third.request.body).toBe(`${replyOpen}<auth><password>correct horse battery</password></auth></config-auth>\n`);
    expect(Buffer.byteLength(third.request.body)).toBe(378);
    expect(third.request.headers).toEqual(expectedHeaders(6, 'webvpncontext=SCRUBBED-COOKIE'));

    const done = expectComplete(await flow.next(ocservComplete));
    expect(done.cookie).toBe('SCRUBBED-SESSION-COOKIE');
    expect(done.banner).toBe('rig test headend (ocserv)');
    expect(done.bannerLines).toEqual(['rig test headend (ocserv)']);
    expect(done.group).toBeUndefined();
  });

  it('rejects when ocserv asks for the password again', async () => {
    const flow = makeFlow('https://vpn.rig.test', sources({ username: 'alice', secretLines: ['wrong'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    const error = await expectError(flow.next(loginFailedForm));
    expect(error.code).toBe('AUTH_REJECTED');
    expect(error.message).toMatch(/rejected the credentials for user "alice": Login failed\b/);
    expect(error.message).not.toContain('wrong');
  });

  it('retries a re-asked password with the next stdin line', async () => {
    const flow = makeFlow('https://vpn.rig.test', sources({ username: 'alice', secretLines: ['typo', 'right'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    const retry = expectRequest(await flow.next(loginFailedForm));
    expect(retry.request.body).toContain('<password>right</password>');
    expect((await expectError(flow.next(loginFailedForm))).code).toBe('AUTH_REJECTED');
  });

  it('never sends X-Support-HTTP-Auth or Host', async () => {
    const flow = makeFlow('https://vpn.rig.test:4443/', sources({ username: 'alice', secretLines: ['pw-1234'] }));
    const requests = [flow.firstRequest(), expectRequest(await flow.next(usernameForm)).request, expectRequest(await flow.next(passwordForm)).request];
    for (const request of requests) {
      expect(header(request, 'X-Support-HTTP-Auth')).toBeUndefined();
      expect(request.headers.some(([name]) => name.toLowerCase() === 'host')).toBe(false);
      expect((Buffer.byteLength(request.body) + (header(request, 'X-Pad')?.length ?? 0)) % 64).toBe(0);
    }
  });

  it('completes at once with a client certificate', async () => {
    const flow = makeFlow('https://vpn.rig.test:4443/', sources(), { clientCertificate: true });
    flow.firstRequest();
    const done = expectComplete(await flow.next(ocservComplete));
    expect(done.cookie).toBe('SCRUBBED-SESSION-COOKIE');
  });

  it('registers the password and cookies as secrets', async () => {
    const flow = makeFlow('https://vpn.rig.test:4443/', sources({ username: 'alice', secretLines: ['hunter2-secret'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    await flow.next(ocservComplete);
    expect(redactText('pw hunter2-secret cookie SCRUBBED-SESSION-COOKIE ctx SCRUBBED-COOKIE')).toBe(
      'pw [redacted] cookie [redacted] ctx [redacted]',
    );
  });

  it('asks for a second password round', async () => {
    const secondPasswordForm = xmlResponse(
      passwordForm.body.replace('name="password" label="Password:"', 'name="secondary_password" label="Password2:"').replace('Please enter your password.', 'Enter the OTP.'),
    );
    const flow = makeFlow('https://vpn.rig.test:4443/', sources({ username: 'alice', secretLines: ['first-pw', '123456'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    const passwordReply = expectRequest(await flow.next(passwordForm));
    expect(passwordReply.request.body).toContain('<auth><password>first-pw</password></auth>');
    const otpReply = expectRequest(await flow.next(secondPasswordForm));
    expect(otpReply.request.body).toContain('<auth><secondary_password>123456</secondary_password></auth>');
    expectComplete(await flow.next(ocservComplete));
  });
});

describe('AuthFlow answers', () => {
  it('uses ACVPN_PASSWORD for the first password only', async () => {
    const secondPasswordForm = xmlResponse(passwordForm.body.replace('name="password"', 'name="secondary_password"'));
    const flow = makeFlow('https://h/', sources({ username: 'alice', envPassword: 'env-secret' }));
    flow.firstRequest();
    await flow.next(usernameForm);
    expect(expectRequest(await flow.next(passwordForm)).request.body).toContain('<password>env-secret</password>');
    const error = await expectError(flow.next(secondPasswordForm));
    expect(error.code).toBe('AUTH_ANSWER_MISSING');
    expect(error.message).toContain('--passwd-on-stdin (one line per password');
    expect(error.message).toContain('--form-entry secondary_password=VALUE');
    expect(error.message).not.toContain('env-secret');
  });

  it('prefers stdin lines over ACVPN_PASSWORD', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice', envPassword: 'env-secret', secretLines: ['stdin-secret'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    expect(expectRequest(await flow.next(passwordForm)).request.body).toContain('<password>stdin-secret</password>');
  });

  it('raises for a missing user name', async () => {
    const flow = makeFlow('https://h/', sources({ secretLines: ['pw-1234'] }));
    flow.firstRequest();
    const error = await expectError(flow.next(usernameForm));
    expect(error.code).toBe('AUTH_ANSWER_MISSING');
    expect(error.message).toContain('"Username:"');
    expect(error.message).toContain('--user or --form-entry username=VALUE');
    expect(error.message).toContain('Please enter your username.');
  });

  it('raises for a missing password without leaking anything', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }));
    flow.firstRequest();
    await flow.next(usernameForm);
    const error = await expectError(flow.next(passwordForm));
    expect(error.code).toBe('AUTH_ANSWER_MISSING');
    expect(error.exitCode).toBe(3);
    expect(error.message).toContain('"Password:"');
    expect(error.message).toContain('--passwd-on-stdin, ACVPN_PASSWORD or --form-entry password=VALUE');
  });

  it('maps double authentication by name', async () => {
    const flow = makeFlow(
      'https://vpn.example.com/',
      sources({
        username: 'jürgen.müller@example.com',
        formEntries: new Map([
          ['password', '123456'],
          ['secondary_password', `p&ss<wörd>"'€`],
        ]),
      }),
    );
    flow.firstRequest();
    const step = expectRequest(await flow.next(xmlResponse(readVector('double-auth-form.xml'))));
    const expectedAuth =
      '<auth><username>jürgen.müller@example.com</username><password>123456</password>' +
      `<secondary_password>p&amp;ss&lt;wörd&gt;"'€</secondary_password></auth>`;
    expect(step.request.body).toBe(`${replyOpen}${expectedAuth}</config-auth>\n`);

    // Decode the bytes as the headend would and compare code points.
    const decoded = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(step.request.body, 'utf8'));
    const start = decoded.indexOf('<auth>');
    const end = decoded.indexOf('</auth>') + '</auth>'.length;
    expect(Array.from(decoded.slice(start, end)).map((character) => character.codePointAt(0))).toEqual(
      Array.from(expectedAuth).map((character) => character.codePointAt(0)),
    );
    expect(Buffer.from(step.request.body, 'utf8').includes(Buffer.from('w\u00f6rd', 'utf8'))).toBe(true);
    expect(Buffer.from(step.request.body, 'utf8').includes(Buffer.from([0xe2, 0x82, 0xac]))).toBe(true);
  });

  it('prompts in interactive mode', async () => {
    const asked: PromptField[] = [];
    const prompt = async (field: PromptField): Promise<string> => {
      asked.push(field);
      return field.secret ? 'typed-secret' : 'bob';
    };
    const flow = makeFlow('https://h/', sources({ interactive: true, prompt }));
    flow.firstRequest();
    expect(expectRequest(await flow.next(usernameForm)).request.body).toContain('<username>bob</username>');
    expect(expectRequest(await flow.next(passwordForm)).request.body).toContain('<password>typed-secret</password>');
    expect(asked).toEqual([
      { name: 'username', label: 'Username:', secret: false, message: 'Please enter your username.' },
      { name: 'password', label: 'Password:', secret: true, message: 'Please enter your password.' },
    ]);
  });

  it('echoes hidden inputs and opaque verbatim', async () => {
    const xml = readVector('asa-opaque-form.xml');
    const opaque = xml.slice(xml.indexOf('<opaque'), xml.indexOf('</opaque>') + '</opaque>'.length);
    const flow = makeFlow('https://vpn.example.com/', sources({ secretLines: ['867530'] }));
    flow.firstRequest();
    const step = expectRequest(await flow.next(xmlResponse(xml)));
    expect(step.request.path).toBe('/+webvpn+/index.html');
    expect(step.request.body).toBe(
      `${replyOpen}${opaque}<auth><challenge_state>a&amp;b&lt;c&gt;"d</challenge_state><answer>867530</answer></auth></config-auth>\n`,
    );
  });

  it('echoes the stored opaque on later forms', async () => {
    const flow = makeFlow('https://vpn.example.com/', sources({ username: 'alice', secretLines: ['867530'] }));
    flow.firstRequest();
    const xml = readVector('asa-opaque-form.xml');
    await flow.next(xmlResponse(xml));
    const step = expectRequest(await flow.next(usernameForm));
    expect(step.request.body).toContain('</opaque><auth><username>alice</username></auth>');
  });

  it('skips second-auth inputs and noaaa credentials', async () => {
    const form = (groups: string) =>
      '<config-auth client="vpn" type="auth-request"><auth id="main"><form>' +
      `<select name="group_list">${groups}</select>` +
      '<input type="text" name="username"/><input type="password" name="password"/>' +
      '<input type="text" name="secondary_username" second-auth="1"/><input type="password" name="secondary_password" second-auth="1"/>' +
      '</form></auth></config-auth>';

    const single = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['pw-one'] }));
    single.firstRequest();
    const singleReply = expectRequest(await single.next(xmlResponse(form('<option value="plain" selected="true">Plain</option>'))));
    expect(singleReply.request.body).toContain('<auth><username>alice</username><password>pw-one</password></auth><group-select>plain</group-select>');

    const double = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['pw-one', 'pw-two'], formEntries: new Map([['secondary_username', 'alice2']]) }));
    double.firstRequest();
    const doubleReply = expectRequest(await double.next(xmlResponse(form('<option value="two" second-auth="1">Two</option>'))));
    expect(doubleReply.request.body).toContain(
      '<auth><username>alice</username><password>pw-one</password><secondary_username>alice2</secondary_username><secondary_password>pw-two</secondary_password></auth>',
    );

    const none = makeFlow('https://h/', sources());
    none.firstRequest();
    const noneReply = expectRequest(await none.next(xmlResponse(form('<option value="guest" noaaa="1">Guest</option>'))));
    expect(noneReply.request.body).toContain('<auth></auth><group-select>guest</group-select>');
  });

  it('rejects single sign-on forms', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const xml = '<config-auth client="vpn" type="auth-request"><auth id="main"><form><input type="sso" name="sso-token"/></form></auth></config-auth>';
    const error = await expectError(flow.next(xmlResponse(xml)));
    expect(error.code).toBe('AUTH_UNEXPECTED_REPLY');
    expect(error.message).toContain('single sign-on');
  });
});

describe('AuthFlow groups', () => {
  const groupForm = xmlResponse(readVector('group-form-awkward-names.xml'));
  const switchedForm = xmlResponse(readVector('group-form-after-switch.xml'));

  it('restarts with the requested non-ASCII group', async () => {
    const flow = makeFlow('https://vpn.example.com/', sources({ username: 'alice', secretLines: ['pw-one', '777111'] }), { group: '研发 & QA' });
    flow.firstRequest();

    const restart = expectRequest(await flow.next(groupForm));
    expect(restart.request.path).toBe('/');
    expect(restart.newConnection).toBe(false);
    expect(restart.request.body).toBe(
      `${initOpen}<group-access>https://vpn.example.com/</group-access><group-select>研发 &amp; QA</group-select></config-auth>\n`,
    );
    const raw = Buffer.from(restart.request.body, 'utf8');
    const expectedBytes = Buffer.concat([
      Buffer.from('<group-select>'),
      Buffer.from([0xe7, 0xa0, 0x94, 0xe5, 0x8f, 0x91]),
      Buffer.from(' &amp; QA</group-select>'),
    ]);
    expect(raw.includes(expectedBytes)).toBe(true);

    // The new form adds a token field; the flow fills it and does not restart again.
    const reply = expectRequest(await flow.next(switchedForm));
    expect(reply.request.path).toBe('/auth');
    expect(reply.request.body).toBe(
      `${replyOpen}<auth><username>alice</username><password>pw-one</password><secondary_password>777111</secondary_password></auth>` +
        '<group-select>研发 &amp; QA</group-select></config-auth>\n',
    );

    const done = expectComplete(await flow.next(ocservComplete));
    expect(done.group).toBe('研发 & QA');
  });

  it('answers directly when the group is already selected', async () => {
    const flow = makeFlow('https://vpn.example.com/', sources({ username: 'alice', secretLines: ['pw-one'] }), { group: 'Staff' });
    flow.firstRequest();
    const reply = expectRequest(await flow.next(groupForm));
    expect(reply.request.body).toContain('<auth><username>alice</username><password>pw-one</password></auth><group-select>Staff</group-select>');
  });

  it('matches the ocserv friendly name', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }), { group: 'Staff members' });
    flow.firstRequest();
    const reply = expectRequest(await flow.next(xmlResponse(readVector('ocserv-1.1-group-form.xml'))));
    expect(reply.request.body).toContain('<auth><username>alice</username></auth><group-select>staff</group-select>');
  });

  it('raises for an unknown group listing the groups', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }), { group: 'Nope' });
    flow.firstRequest();
    const error = await expectError(flow.next(groupForm));
    expect(error.code).toBe('AUTH_GROUP_NOT_FOUND');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('"Nope"');
    expect(error.message).toContain('"Staff", "Example-VPN (Full Tunnel)", "研发 & QA"');
  });

  it('lists values that differ from labels', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }), { group: 'staf' });
    flow.firstRequest();
    const error = await expectError(flow.next(xmlResponse(readVector('ocserv-1.1-group-form.xml'))));
    expect(error.message).toContain('"Staff members" ("staff"), "Contractors" ("contractors")');
  });

  it('takes the only group without prompting', async () => {
    const prompt = async (field: PromptField): Promise<string> => {
      if (field.options !== undefined) throw new Error('prompted for a group');
      return 'bob';
    };
    const flow = makeFlow('https://h/', sources({ interactive: true, prompt }));
    flow.firstRequest();
    const xml = readVector('group-form-awkward-names.xml').replace(/<option>[^<]*<\/option>\s*/g, '');
    const reply = expectRequest(await flow.next(xmlResponse(xml)));
    expect(reply.request.body).toContain('<group-select>Staff</group-select>');
  });

  it('prompts with the group list', async () => {
    const asked: PromptField[] = [];
    const prompt = async (field: PromptField): Promise<string> => {
      asked.push(field);
      if (field.options !== undefined) return 'Example-VPN (Full Tunnel)';
      return field.secret ? 'pw-typed' : 'bob';
    };
    const flow = makeFlow('https://h/', sources({ interactive: true, prompt }));
    flow.firstRequest();
    const restart = expectRequest(await flow.next(groupForm));
    expect(restart.request.body).toContain('<group-select>Example-VPN (Full Tunnel)</group-select>');
    expect(asked[0]?.options).toEqual(['Staff', 'Example-VPN (Full Tunnel)', '研发 & QA']);
    expect(asked[0]?.label).toBe('GROUP:');
  });

  it('uses the selected group when non-interactive', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['pw-one'] }));
    flow.firstRequest();
    const reply = expectRequest(await flow.next(groupForm));
    expect(reply.request.path).toBe('/auth');
    expect(reply.request.body).toContain('<group-select>Staff</group-select>');
  });

  it('uses the first group when none is selected', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }));
    flow.firstRequest();
    const reply = expectRequest(await flow.next(xmlResponse(readVector('ocserv-1.1-group-form.xml'))));
    expect(reply.request.body).toContain('<group-select>staff</group-select>');
  });

  it('restarts only once when the headend keeps its order', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['pw-one'] }), { group: 'Example-VPN (Full Tunnel)' });
    flow.firstRequest();
    expect(expectRequest(await flow.next(groupForm)).request.body).toContain('type="init"');
    const reply = expectRequest(await flow.next(groupForm));
    expect(reply.request.body).toContain('type="auth-reply"');
    expect(reply.request.body).toContain('<group-select>Example-VPN (Full Tunnel)</group-select>');
  });
});

describe('AuthFlow group URL', () => {
  it('falls back to / after a 404 and selects the path group', async () => {
    const flow = makeFlow('https://vpn.example.com/Example-VPN (Full Tunnel)', sources({ username: 'alice', secretLines: ['pw-one'] }));

    const first = flow.firstRequest();
    expect(first.path).toBe('/Example-VPN%20(Full%20Tunnel)');
    expect(first.body).toContain('<group-access>https://vpn.example.com/Example-VPN%20(Full%20Tunnel)</group-access>');

    const fallback = expectRequest(await flow.next({ status: 404, reason: 'Not Found', headers: [['Connection', 'close']], body: '' }));
    expect(fallback.newConnection).toBe(true);
    expect(fallback.request.path).toBe('/');
    expect(fallback.request.body).toContain('<group-access>https://vpn.example.com/Example-VPN%20(Full%20Tunnel)</group-access></config-auth>');

    const restart = expectRequest(await flow.next(xmlResponse(readVector('group-form-awkward-names.xml'))));
    expect(restart.request.path).toBe('/');
    expect(restart.request.body).toContain('<group-select>Example-VPN (Full Tunnel)</group-select>');
  });

  it('raises for a 404 after the first request', async () => {
    const flow = makeFlow('https://vpn.example.com/', sources({ username: 'alice' }));
    flow.firstRequest();
    await flow.next(usernameForm);
    const error = await expectError(flow.next({ status: 404, reason: 'Not Found', headers: [], body: '' }));
    expect(error.code).toBe('HTTP_STATUS');
    expect(error.message).toContain('HTTP 404 Not Found to POST /auth');
  });

  it('raises for a group path the headend does not list', async () => {
    const flow = makeFlow('https://vpn.example.com/Sales', sources({ username: 'alice' }));
    flow.firstRequest();
    await flow.next({ status: 404, reason: 'Not Found', headers: [], body: '' });
    const error = await expectError(flow.next(xmlResponse(readVector('group-form-awkward-names.xml'))));
    expect(error.code).toBe('AUTH_GROUP_NOT_FOUND');
    expect(error.message).toContain('"Sales"');
  });
});

describe('AuthFlow failures', () => {
  it('maps 401 to AUTH_REJECTED with the reason', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['wrong-pw'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    const error = await expectError(flow.next({ status: 401, reason: 'Authentication failed', headers: [['Content-Length', '0']], body: '' }));
    expect(error.code).toBe('AUTH_REJECTED');
    expect(error.message).toBe('the headend rejected the credentials for user "alice": Authentication failed; check the user name and password');
    expect(error.message).not.toContain('wrong-pw');
  });

  it('maps other statuses to HTTP_STATUS', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const error = await expectError(flow.next({ status: 503, reason: 'Service Unavailable', headers: [], body: '' }));
    expect(error.code).toBe('HTTP_STATUS');
    expect(error.details).toEqual({ status: 503, path: '/' });
  });

  it('names the redirect target', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const error = await expectError(flow.next({ status: 302, reason: 'Found', headers: [['Location', 'https://other.example.com/']], body: '' }));
    expect(error.message).toContain('redirects to https://other.example.com/');
  });

  it('raises when success carries no cookie', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const error = await expectError(flow.next(xmlResponse(ocservComplete.body)));
    expect(error.code).toBe('AUTH_UNEXPECTED_REPLY');
  });

  it('takes the cookie from a minimal success', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const done = expectComplete(await flow.next(readHttpVector('complete-minimal.http')));
    expect(done.cookie).toBe('9F8E7D6C5B4A');
    expect(done.banner).toBe('Authorised use only. Activity is logged.');
    expect(done.profileManifest).toBeUndefined();
  });

  it('prefers session-token over the webvpn cookie', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const done = expectComplete(await flow.next(xmlResponse(readVector('complete-profile-manifest.xml'), [['Set-Cookie', 'webvpn=from-header; Secure']])));
    expect(done.cookie).toBe('TOKEN-0123456789abcdef');
    expect(done.profileManifest).toEqual([{ uri: '/profiles/corp.xml', sha1: '0123456789ABCDEF0123456789ABCDEF01234567' }]);
  });

  it('collects pre-login and post-login banners', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['pw-one'] }));
    flow.firstRequest();
    const withBanner = xmlResponse(usernameForm.body.replace('<message>', '<banner>Pre-login notice</banner><message>'));
    await flow.next(withBanner);
    await flow.next(passwordForm);
    const done = expectComplete(await flow.next(ocservComplete));
    expect(done.bannerLines).toEqual(['Pre-login notice', 'rig test headend (ocserv)']);
  });

  it('raises AUTH_XML_INVALID for a broken body', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const error = await expectError(flow.next(xmlResponse('<config-auth type="auth-request"><auth>')));
    expect(error.code).toBe('AUTH_XML_INVALID');
  });

  it('caps the number of rounds', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }));
    flow.firstRequest();
    let requests = 1;
    let caught: AcvpnError | undefined;
    for (let i = 0; i < 40 && caught === undefined; i++) {
      try {
        await flow.next(usernameForm);
        requests += 1;
      } catch (error) {
        if (!AcvpnError.is(error)) throw error;
        caught = error;
      }
    }
    expect(requests).toBe(16);
    expect(caught?.code).toBe('AUTH_UNEXPECTED_REPLY');
    expect(caught?.message).toContain('16 requests');
  });

  it('retries once after a form error, then rejects', async () => {
    const errorForm = xmlResponse(passwordForm.body.replace('<message>', '<error>Login failed.</error><message>'));
    const flow = makeFlow('https://h/', sources({ username: 'alice', secretLines: ['wrong-1', 'wrong-2'] }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    const retry = expectRequest(await flow.next(errorForm));
    expect(retry.request.body).toContain('<password>wrong-2</password>');
    const error = await expectError(flow.next(errorForm));
    expect(error.code).toBe('AUTH_REJECTED');
    expect(error.message).toContain('for user "alice": Login failed');
  });

  it('does not resend a fixed password after a form error', async () => {
    const errorForm = xmlResponse(passwordForm.body.replace('<message>', '<error>Login failed.</error><message>'));
    const flow = makeFlow('https://h/', sources({ username: 'alice', envPassword: 'env-wrong' }));
    flow.firstRequest();
    await flow.next(usernameForm);
    await flow.next(passwordForm);
    const error = await expectError(flow.next(errorForm));
    expect(error.code).toBe('AUTH_REJECTED');
    expect(error.message).toContain('Login failed; check');
  });

  it('sends client-cert-fail without a certificate', async () => {
    const flow = makeFlow('https://h/', sources());
    flow.firstRequest();
    const request = '<config-auth client="vpn" type="auth-request"><auth id="main"/><client-cert-request/></config-auth>';
    const step = expectRequest(await flow.next(xmlResponse(request)));
    expect(step.newConnection).toBe(false);
    expect(step.request.body).toContain('<group-access>https://h/</group-access><client-cert-fail/></config-auth>');
    const error = await expectError(flow.next(xmlResponse(request)));
    expect(error.code).toBe('AUTH_REJECTED');
  });

  it('reconnects once when a certificate is configured', async () => {
    const flow = makeFlow('https://h/', sources(), { clientCertificate: true });
    flow.firstRequest();
    const request = '<config-auth client="vpn" type="auth-request"><auth id="main"/><client-cert-request/></config-auth>';
    const retry = expectRequest(await flow.next(xmlResponse(request)));
    expect(retry.newConnection).toBe(true);
    expect(retry.request.body).not.toContain('client-cert-fail');
    const fail = expectRequest(await flow.next(xmlResponse(request)));
    expect(fail.request.body).toContain('<client-cert-fail/>');
  });

  it('rejects a form action on another host', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }));
    flow.firstRequest();
    const error = await expectError(flow.next(xmlResponse(usernameForm.body.replace('action="/auth"', 'action="https://evil.example.net/auth"'))));
    expect(error.code).toBe('AUTH_UNEXPECTED_REPLY');
    expect(error.message).toContain('https://evil.example.net');
  });

  it('rejects control characters in header values', () => {
    expect(() => makeFlow('https://h/', sources(), { userAgent: 'Agent\r\nX-Evil: 1' })).toThrow(/control character/);
  });
});

describe('AuthFlow response headers', () => {
  it('matches Set-Cookie case-insensitively', async () => {
    const flow = makeFlow('https://h/', sources({ username: 'alice' }));
    flow.firstRequest();
    const step = expectRequest(await flow.next(xmlResponse(usernameForm.body, [['set-cookie', 'webvpncontext=ctx-value-1; Secure']])));
    expect(header(step.request, 'Cookie')).toBe('webvpncontext=ctx-value-1');
  });

  it('keeps cookies across a new connection', async () => {
    const flow = makeFlow('https://h/group', sources({ username: 'alice' }));
    flow.firstRequest();
    const step = expectRequest(
      await flow.next({ status: 404, reason: 'Not Found', headers: [['Set-Cookie', 'webvpncontext=ctx-value-2; Secure']], body: '' } satisfies HttpResponse),
    );
    expect(header(step.request, 'Cookie')).toBe('webvpncontext=ctx-value-2');
  });
});
