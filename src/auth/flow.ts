// The login dialogue as a state machine with no I/O: the transport sends each request it returns
// and passes back the response, until the result is the session cookie.
//
//   firstRequest() ── init POST to the URL path ─────────────────────────────┐
//        ▲                                                                    ▼
//        │ 404 on a group URL path: init at "/" on a new connection      next(response)
//        │ group list offers another group: init + <group-select> (once)      │
//        │ <client-cert-request>: init again, with a certificate or           │
//        │   with <client-cert-fail/>                                         │
//        └────────────────────────────────────────────────────────────────────┤
//                        200 auth-request: auth-reply to the form action ◄────┤
//                        200 complete: cookie from <session-token> or webvpn ◄┤
//                        401: AUTH_REJECTED, any other status: HTTP_STATUS ◄──┘
//
// Every request counts as a round. More than maxRounds raises AUTH_UNEXPECTED_REPLY, so a headend
// that keeps sending forms cannot keep the client busy forever.

import type { Logger } from '../core/log.js';
import { AcvpnError } from '../core/errors.js';
import { registerSecret } from '../core/redact.js';
import type { Posture } from '../posture/posture.js';
import { FormAnswerer, type AnswerSources } from './answers.js';
import { CookieJar } from './cookie-jar.js';
import { parseConfigAuth, type AuthForm, type FormOption, type FormSelect, type ProfileManifestEntry } from './form.js';
import { chooseGroup, currentGroup, findGroupSelect, requireGroup } from './group.js';
import { buildAuthReplyXml, buildInitXml, xPadFor } from './xml-build.js';

export type { AnswerSources, PromptField } from './answers.js';

/**
 * One request for the transport to send. The transport adds Host and Content-Length (the UTF-8
 * byte length of `body`) and sends every header here unchanged, names in the case given.
 */
export interface HttpRequest {
  method: 'POST';
  /** Origin-form request target, already percent-encoded ("/", "/auth", "/Example-VPN%20(Full%20Tunnel)"). */
  path: string;
  headers: Array<[string, string]>;
  body: string;
}

export interface HttpResponse {
  status: number;
  /** The reason phrase of the status line ("Authentication failed" on an ocserv 401). */
  reason?: string;
  headers: Array<[string, string]>;
  body: string;
}

export type AuthStep =
  | {
      kind: 'request';
      request: HttpRequest;
      /** True when the request must go out on a fresh TLS connection (after ocserv closed the old one). */
      newConnection: boolean;
    }
  | {
      kind: 'complete';
      /** The session cookie value: CONNECT sends `Cookie: webvpn=<cookie>`. Registered as a secret. */
      cookie: string;
      /** The post-login banner from the success document. */
      banner?: string;
      /** Every banner of the login, pre-login ones from forms and the post-login one, in order of arrival. */
      bannerLines: string[];
      /** The value of the group option sent in <group-select>, when the headend offered a group list. */
      group?: string;
      profileManifest?: ProfileManifestEntry[];
    };

export interface AuthFlowOptions {
  /** The URL the user gave; a path other than "/" is tried first as a group URL. */
  url: URL;
  posture: Posture;
  userAgent: string;
  /** The group to select; beats a group named by the URL path. */
  group?: string;
  answers: AnswerSources;
  /** True when the transport presents a client certificate on each TLS connection. */
  clientCertificate?: boolean;
  logger?: Logger;
  /** Clock for cookie expiry, in milliseconds since the epoch. */
  now?: () => number;
  /** Maximum number of requests in one login; 16 unless set. */
  maxRounds?: number;
}

/** A password login takes 2 to 5 requests, and ocserv 1.1 serves at most 16 on one TLS connection. */
export const DEFAULT_MAX_ROUNDS = 16;

export class AuthFlow {
  private readonly jar = new CookieJar();
  private readonly answerer: FormAnswerer;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly maxRounds: number;

  /** Path the init request goes to: the URL path, or "/" after the headend rejected the group URL. */
  private initPath: string;
  /** Path of the request in flight, which the next response belongs to. */
  private currentPath: string;
  /** True while the request in flight is the first POST to a group URL path. */
  private triedGroupPath = false;
  private requestedGroup: string | undefined;
  private chosenGroup: FormOption | undefined;
  private groupRestarted = false;
  private errorRetried = false;
  /** Names of password fields already answered in an earlier round. */
  private readonly answeredSecretFields = new Set<string>();
  private certificateRetried = false;
  private clientCertFailSent = false;
  private opaqueRaw: string | undefined;
  private readonly bannerLines: string[] = [];
  private rounds = 0;

  constructor(private readonly options: AuthFlowOptions) {
    checkHeaderValues(options);
    this.answerer = new FormAnswerer(options.answers);
    this.log = options.logger?.child({ component: 'auth' });
    this.now = options.now ?? Date.now;
    this.maxRounds = options.maxRounds ?? DEFAULT_MAX_ROUNDS;
    this.requestedGroup = options.group ?? options.answers.group;

    const path = options.url.pathname + options.url.search;
    this.initPath = path === '' ? '/' : path;
    this.currentPath = this.initPath;
    this.triedGroupPath = this.initPath !== '/';
  }

  /** Returns the init request that opens the login. */
  firstRequest(): HttpRequest {
    return this.initRequest({});
  }

  /** Takes the response to the previous request and returns the next request or the result. */
  async next(response: HttpResponse): Promise<AuthStep> {
    this.storeCookies(response.headers);
    const triedGroupPath = this.triedGroupPath;
    this.triedGroupPath = false;

    if (response.status === 404 && triedGroupPath) return this.fallBackFromGroupPath();
    if (response.status === 401) throw this.rejected(response);
    if (response.status !== 200) throw this.unexpectedStatus(response);

    const document = parseConfigAuth(response.body);
    if (document.type === 'complete') {
      return this.complete(document.sessionToken, document.banner, document.profileManifest);
    }

    if (document.opaqueRaw !== undefined) this.opaqueRaw = document.opaqueRaw;
    if (document.clientCertRequested) return this.answerCertificateRequest();
    return this.answerForm(document.form);
  }

  // --- responses ---

  // ocserv 1.1 accepts POST only on "/", "/auth" and "/VPN" and closes the connection after a 404,
  // so the group named by the URL path is selected from the form at "/" instead.
  // NOTE: only ocserv's 404 triggers this. A headend that responds to a group path with another
  // status (or with a form for a different group) is not retried at "/".
  private fallBackFromGroupPath(): AuthStep {
    const pathGroup = decodeGroupPath(this.options.url.pathname);
    this.requestedGroup ??= pathGroup;
    this.log?.info({ path: this.initPath, group: this.requestedGroup }, 'headend rejected the group URL path; logging in at / and selecting the group from the form');
    this.initPath = '/';
    return { kind: 'request', request: this.initRequest({}), newConnection: true };
  }

  private answerCertificateRequest(): AuthStep {
    if (this.options.clientCertificate === true && !this.certificateRetried) {
      // Some ASAs ask for the certificate only on a second connection.
      this.certificateRetried = true;
      return { kind: 'request', request: this.initRequest({}), newConnection: true };
    }
    if (this.clientCertFailSent) {
      throw new AcvpnError(
        'AUTH_REJECTED',
        'the headend requires a TLS client certificate and none was accepted; configure a client certificate the headend trusts',
      );
    }
    this.clientCertFailSent = true;
    return { kind: 'request', request: this.initRequest({ clientCertFail: true }), newConnection: false };
  }

  private async answerForm(form: AuthForm): Promise<AuthStep> {
    // ocserv 1.1 reports a wrong password not with <error> but by asking for the same password
    // field again, with "Login failed." in <message>. A secret field asked for twice is that.
    const asksAgain = form.inputs.some((input) => input.type === 'password' && this.answeredSecretFields.has(input.name));
    if (asksAgain && form.error === undefined) form = { ...form, error: firstLine(form.message) ?? 'the headend asked for the same password again' };
    const retryAfterError = form.error !== undefined;
    if (retryAfterError) {
      // One retry lets a user who mistyped try again. A second error means the answers are wrong.
      if (this.errorRetried) throw this.rejectedByForm(form);
      this.errorRetried = true;
    }
    this.collectBanner(form.banner);

    const groupSelect = findGroupSelect(form);
    let groupValue: string | undefined;
    if (groupSelect !== undefined) {
      const option = await this.resolveGroup(groupSelect, form);
      const formGroup = currentGroup(groupSelect);
      // A headend may show a different form per group, so restart the login with the group chosen
      // instead of answering a form meant for another group. ocserv 1.1 then sends the same form
      // again with the chosen group listed first. The restart happens only once, so it cannot loop.
      if (option !== undefined && formGroup !== undefined && option.value !== formGroup.value && !this.groupRestarted) {
        this.groupRestarted = true;
        this.log?.debug({ group: option.label }, 'restarting the login with the chosen group');
        return { kind: 'request', request: this.initRequest({ groupSelect: option.value }), newConnection: false };
      }
      groupValue = option?.value;
    }

    if (form.inputs.length === 0 && form.selects.length === 0) {
      if (retryAfterError) throw this.rejectedByForm(form);
      throw new AcvpnError(
        'AUTH_UNEXPECTED_REPLY',
        `the headend sent a form (id ${JSON.stringify(form.id)}) with nothing to fill in${describeFormText(form)}; the login cannot continue`,
        { formId: form.id },
      );
    }
    if (form.inputs.some((input) => input.type === 'sso')) {
      throw new AcvpnError(
        'AUTH_UNEXPECTED_REPLY',
        'the headend asks for single sign-on (SAML) in a browser, which acvpn does not support; ask the headend administrator for a group with password or certificate login',
        { formId: form.id },
      );
    }

    const fields = await this.answerer.fill(form, {
      ...(this.chosenGroup === undefined ? {} : { group: this.chosenGroup }),
      retryAfterError,
    });
    this.log?.debug({ formId: form.id, fields: fields.map(([name]) => name) }, 'answering form');
    for (const input of form.inputs) if (input.type === 'password') this.answeredSecretFields.add(input.name);

    const body = buildAuthReplyXml({
      posture: this.options.posture,
      ...(this.opaqueRaw === undefined ? {} : { opaqueRaw: this.opaqueRaw }),
      fields,
      ...(groupValue === undefined ? {} : { groupSelect: groupValue }),
    });
    const path = this.resolveAction(form.action);
    return { kind: 'request', request: this.request(path, body), newConnection: false };
  }

  private async resolveGroup(select: FormSelect, form: AuthForm): Promise<FormOption | undefined> {
    // Once chosen, the group stays: later forms are matched against the same choice.
    if (this.chosenGroup !== undefined) {
      this.chosenGroup = requireGroup(select, this.chosenGroup.value);
      return this.chosenGroup;
    }

    const choice = await chooseGroup(select, this.requestedGroup, form, this.answerer);
    if (choice === undefined) return undefined;
    if (choice.reason === 'default') {
      this.log?.info({ group: choice.option.label }, 'no group given; using the group the headend offers as default');
    }
    this.chosenGroup = choice.option;
    return choice.option;
  }

  private complete(sessionToken: string | undefined, banner: string | undefined, profileManifest: ProfileManifestEntry[] | undefined): AuthStep {
    registerSecret(sessionToken);
    const cookie = nonEmpty(sessionToken) ?? this.jar.get('webvpn');
    if (cookie === undefined) {
      throw new AcvpnError(
        'AUTH_UNEXPECTED_REPLY',
        'the headend reported a successful login but sent no session cookie (no webvpn Set-Cookie header and no <session-token>); the tunnel cannot be opened',
      );
    }
    this.collectBanner(banner);
    if (this.requestedGroup !== undefined && this.chosenGroup === undefined) {
      this.log?.warn({ group: this.requestedGroup }, 'the headend offered no group list, so the requested group was not sent');
    }
    return {
      kind: 'complete',
      cookie,
      ...(banner === undefined ? {} : { banner }),
      bannerLines: [...this.bannerLines],
      ...(this.chosenGroup === undefined ? {} : { group: this.chosenGroup.value }),
      ...(profileManifest === undefined ? {} : { profileManifest }),
    };
  }

  // --- requests ---

  private initRequest(args: { groupSelect?: string; clientCertFail?: boolean }): HttpRequest {
    const body = buildInitXml({
      posture: this.options.posture,
      groupAccess: this.options.url.href,
      ...args,
    });
    return this.request(this.initPath, body);
  }

  private request(path: string, body: string): HttpRequest {
    this.rounds += 1;
    if (this.rounds > this.maxRounds) {
      throw new AcvpnError(
        'AUTH_UNEXPECTED_REPLY',
        `the login did not finish within ${this.maxRounds} requests; the headend keeps sending forms, so check the group and the answers given`,
        { rounds: this.maxRounds },
      );
    }
    this.currentPath = path;
    return { method: 'POST', path, headers: this.headers(body), body };
  }

  // Header names are written exactly as ocserv matches them (it compares request header names
  // case-sensitively), in the order openconnect 9 uses for the headers both clients send.
  private headers(body: string): Array<[string, string]> {
    const { posture, userAgent } = this.options;
    const headers: Array<[string, string]> = [['User-Agent', userAgent]];
    const cookie = this.jar.header();
    if (cookie !== undefined) headers.push(['Cookie', cookie]);
    headers.push(
      ['Accept', '*/*'],
      ['Accept-Encoding', 'identity'],
      ['X-Transcend-Version', '1'],
      ['X-Aggregate-Auth', '1'],
      ['X-AnyConnect-Identifier-ClientVersion', posture.clientVersion],
      ['X-AnyConnect-Identifier-Platform', posture.platform],
      ['X-AnyConnect-Identifier-PlatformVersion', posture.platformVersion],
      ['X-AnyConnect-Identifier-DeviceType', posture.deviceType],
      ['X-AnyConnect-Identifier-Device-UniqueID', posture.deviceUniqueId],
      ['X-Pad', xPadFor(Buffer.byteLength(body, 'utf8'))],
      ['Content-Type', 'application/xml; charset=utf-8'],
    );
    return headers;
  }

  // The form action may be relative ("/auth") or absolute. It must stay on the same headend,
  // because the transport keeps one connection to one host.
  private resolveAction(action: string | undefined): string {
    if (action === undefined) return this.currentPath;
    let target: URL;
    try {
      target = new URL(action, new URL(this.currentPath, this.options.url));
    } catch {
      throw new AcvpnError('AUTH_UNEXPECTED_REPLY', `the headend's form action ${JSON.stringify(action)} is not a valid URL`);
    }
    if (target.origin !== this.options.url.origin) {
      throw new AcvpnError(
        'AUTH_UNEXPECTED_REPLY',
        `the headend's form posts to ${target.origin}, another host than ${this.options.url.origin}; connect to that URL directly if it is trusted`,
      );
    }
    return target.pathname + target.search;
  }

  private storeCookies(headers: Array<[string, string]>): void {
    const nowMs = this.now();
    for (const [name, value] of headers) {
      if (name.toLowerCase() === 'set-cookie') this.jar.apply(value, nowMs);
    }
  }

  private collectBanner(banner: string | undefined): void {
    if (banner === undefined || banner === '') return;
    // ocserv repeats nothing, but ASA may resend the same pre-login banner with each form.
    if (this.bannerLines.at(-1) !== banner) this.bannerLines.push(banner);
  }

  // --- errors ---

  private rejected(response: HttpResponse): AcvpnError {
    const username = this.answerer.lastUsername ?? this.options.answers.username;
    const forUser = username === undefined ? '' : ` for user ${JSON.stringify(username)}`;
    const reason = nonEmpty(response.reason) ?? 'no reason given';
    return new AcvpnError(
      'AUTH_REJECTED',
      `the headend rejected the credentials${forUser}: ${reason}; check the user name and password`,
      { status: 401, reason },
    );
  }

  private rejectedByForm(form: AuthForm): AcvpnError {
    const username = this.answerer.lastUsername ?? this.options.answers.username;
    const forUser = username === undefined ? '' : ` for user ${JSON.stringify(username)}`;
    return new AcvpnError(
      'AUTH_REJECTED',
      `the headend rejected the credentials${forUser}: ${(form.error ?? 'no reason given').replace(/\.$/, '')}; check the user name and password`,
      { formId: form.id },
    );
  }

  private unexpectedStatus(response: HttpResponse): AcvpnError {
    const reason = nonEmpty(response.reason);
    const status = `${response.status}${reason === undefined ? '' : ` ${reason}`}`;
    const location = response.headers.find(([name]) => name.toLowerCase() === 'location')?.[1];
    const hint =
      location !== undefined
        ? `it redirects to ${location}, and acvpn does not follow redirects during login; connect to that URL instead`
        : response.status === 404
          ? 'check the path of the headend URL'
          : 'check the headend URL and the headend logs';
    return new AcvpnError('HTTP_STATUS', `the headend responded with HTTP ${status} to POST ${this.currentPath}; ${hint}`, {
      status: response.status,
      path: this.currentPath,
    });
  }
}

// "/Example-VPN%20(Full%20Tunnel)/" → "Example-VPN (Full Tunnel)"
function decodeGroupPath(pathname: string): string {
  const trimmed = pathname.replace(/^\/+|\/+$/g, '');
  try {
    return decodeURIComponent(trimmed);
  } catch {
    // A malformed escape such as "%zz" is kept as typed.
    return trimmed;
  }
}

function checkHeaderValues(options: AuthFlowOptions): void {
  const { posture } = options;
  const values: Array<[string, string]> = [
    ['user agent', options.userAgent],
    ['client version', posture.clientVersion],
    ['platform', posture.platform],
    ['platform version', posture.platformVersion],
    ['device type', posture.deviceType],
    ['device unique id', posture.deviceUniqueId],
  ];
  for (const [what, value] of values) {
    // A line break would end the header and let the value inject its own headers.
    if (/[\u0000-\u001f\u007f]/.test(value)) {
      throw new AcvpnError('CONFIG_INVALID', `the ${what} ${JSON.stringify(value)} contains a control character; remove it from the configuration`);
    }
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function describeFormText(form: AuthForm): string {
  const text = form.error ?? form.message ?? form.title;
  return text === undefined ? '' : ` (${JSON.stringify(text)})`;
}

function firstLine(text: string | undefined): string | undefined {
  const line = text?.split('\n')[0]?.trim();
  return line === undefined || line === '' ? undefined : line;
}
