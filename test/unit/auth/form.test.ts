import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { MAX_CONFIG_AUTH_BYTES, parseConfigAuth, type ConfigAuth } from '../../../src/auth/form.js';
import { readHttpVector, readVector } from './vectors.js';

function expectAuthRequest(document: ConfigAuth) {
  if (document.type !== 'auth-request') throw new Error(`expected an auth-request, parsed ${document.type}`);
  return document;
}

function parseError(xml: string): AcvpnError {
  try {
    parseConfigAuth(xml);
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('parseConfigAuth accepted the input');
}

describe('parseConfigAuth on ocserv 1.1.6 captures', () => {
  it('parses the username form', () => {
    const document = expectAuthRequest(parseConfigAuth(readHttpVector('ocserv-1.1.6/01-username-form.http').body));
    expect(document.form).toEqual({
      id: 'main',
      message: 'Please enter your username.',
      action: '/auth',
      inputs: [{ type: 'text', name: 'username', label: 'Username:' }],
      selects: [],
    });
    expect(document.opaqueRaw).toBeUndefined();
    expect(document.clientCertRequested).toBe(false);
  });

  it('parses the password form', () => {
    const document = expectAuthRequest(parseConfigAuth(readHttpVector('ocserv-1.1.6/02-password-form.http').body));
    expect(document.form.message).toBe('Please enter your password.');
    expect(document.form.action).toBe('/auth');
    expect(document.form.inputs).toEqual([{ type: 'password', name: 'password', label: 'Password:' }]);
  });

  it('parses the success document', () => {
    expect(parseConfigAuth(readHttpVector('ocserv-1.1.6/03-complete.http').body)).toEqual({
      type: 'complete',
      title: 'SSL VPN Service',
      banner: 'rig test headend (ocserv)',
    });
  });
});

describe('parseConfigAuth on hand-written forms', () => {
  it('parses an ocserv group list with values', () => {
    const { form } = expectAuthRequest(parseConfigAuth(readVector('ocserv-1.1-group-form.xml')));
    expect(form.selects).toEqual([
      {
        name: 'group_list',
        label: 'Group:',
        options: [
          { value: 'staff', label: 'Staff members', selected: false },
          { value: 'contractors', label: 'Contractors', selected: false },
        ],
      },
    ]);
  });

  it('decodes entities in group names', () => {
    const { form } = expectAuthRequest(parseConfigAuth(readVector('group-form-awkward-names.xml')));
    expect(form.selects[0]?.options).toEqual([
      { value: 'Staff', label: 'Staff', selected: true },
      { value: 'Example-VPN (Full Tunnel)', label: 'Example-VPN (Full Tunnel)', selected: false },
      { value: '研发 & QA', label: '研发 & QA', selected: false },
    ]);
    expect(form.inputs.map((input) => input.name)).toEqual(['username', 'password']);
  });

  it('keeps opaque verbatim and decodes hidden values', () => {
    const xml = readVector('asa-opaque-form.xml');
    const document = expectAuthRequest(parseConfigAuth(xml));
    const opaqueStart = xml.indexOf('<opaque');
    const opaqueEnd = xml.indexOf('</opaque>') + '</opaque>'.length;
    expect(document.opaqueRaw).toBe(xml.slice(opaqueStart, opaqueEnd));
    expect(document.form.id).toBe('challenge');
    expect(document.form.title).toBe('Login');
    expect(document.form.message).toBe('Hello Alice, enter the next code & press OK.');
    expect(document.form.action).toBe('/+webvpn+/index.html');
    expect(document.form.inputs[0]).toEqual({ type: 'hidden', name: 'challenge_state', value: 'a&b<c>"d' });
    expect(document.form.inputs.map((input) => input.type)).toEqual(['hidden', 'password', 'submit', 'reset']);
  });

  it('parses a success without optional elements', () => {
    expect(parseConfigAuth(readHttpVector('complete-minimal.http').body)).toEqual({
      type: 'complete',
      banner: 'Authorised use only. Activity is logged.',
    });
  });

  it('parses session token and profile manifest', () => {
    expect(parseConfigAuth(readVector('complete-profile-manifest.xml'))).toEqual({
      type: 'complete',
      title: 'SSL VPN Service',
      message: 'Welcome',
      sessionToken: 'TOKEN-0123456789abcdef',
      profileManifest: [{ uri: '/profiles/corp.xml', sha1: '0123456789ABCDEF0123456789ABCDEF01234567' }],
    });
  });

  it('keeps digit strings as text', () => {
    const xml =
      '<?xml version="1.0"?><config-auth client="vpn" type="auth-request"><auth id="main"><form>' +
      '<input type="hidden" name="code" value="0168179266"/><input type="hidden" name="big" value="1e999"/></form></auth></config-auth>';
    const { form } = expectAuthRequest(parseConfigAuth(xml));
    expect(form.inputs.map((input) => input.value)).toEqual(['0168179266', '1e999']);
  });

  it('substitutes error parameters', () => {
    const xml =
      '<config-auth client="vpn" type="auth-request"><auth id="main">' +
      '<error id="88" param1="alice" param2="locked">Login failed for %s: %s</error><form><input type="text" name="username"/></form></auth></config-auth>';
    expect(expectAuthRequest(parseConfigAuth(xml)).form.error).toBe('Login failed for alice: locked');
  });

  it('flags a client certificate request', () => {
    const xml = '<config-auth client="vpn" type="auth-request"><auth id="main"/><client-cert-request/></config-auth>';
    const document = expectAuthRequest(parseConfigAuth(xml));
    expect(document.clientCertRequested).toBe(true);
    expect(document.form.inputs).toEqual([]);
  });

  it('marks second-auth and noaaa options', () => {
    const xml =
      '<config-auth client="vpn" type="auth-request"><auth id="main"><form><select name="group_list">' +
      '<option value="a" second-auth="1">A</option><option value="b" noaaa="1" selected="true">B</option></select>' +
      '<input type="text" name="secondary_username" second-auth="1"/></form></auth></config-auth>';
    const { form } = expectAuthRequest(parseConfigAuth(xml));
    expect(form.selects[0]?.options).toEqual([
      { value: 'a', label: 'A', selected: false, secondAuth: true },
      { value: 'b', label: 'B', selected: true, noAaa: true },
    ]);
    expect(form.inputs[0]?.secondAuth).toBe(true);
  });
});

describe('parseConfigAuth rejects bad input', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['malformed XML', '<config-auth type="complete"><auth></config-auth>', /malformed XML/],
    ['HTML page', '<html><body>Welcome</body></html>', /root is <html>/],
    ['plain text', 'Service Unavailable', /malformed XML/],
    ['empty body', '', /empty body/],
    ['__proto__ element', '<config-auth type="complete"><__proto__>x</__proto__></config-auth>', /parser rejected/],
    ['constructor element', '<config-auth type="complete"><constructor>x</constructor></config-auth>', /parser rejected/],
    ['wrong root', '<?xml version="1.0"?><auth-config type="complete"/>', /root is <auth-config>/],
    ['two roots', '<config-auth type="complete"/><config-auth type="complete"/>', /more than one <config-auth> root/],
    ['unknown type', '<config-auth client="vpn" type="logout"/>', /unknown type "logout"/],
    ['missing type', '<config-auth client="vpn"/>', /unknown type "\(none\)"/],
    ['DOCTYPE', '<!DOCTYPE x [<!ENTITY e "zz">]><config-auth type="complete">&e;</config-auth>', /document type declaration/],
    ['auth-request without auth', '<config-auth type="auth-request"><version>1</version></config-auth>', /without an <auth>/],
    ['input name with markup', '<config-auth type="auth-request"><auth id="main"><form><input type="text" name="a&gt;&lt;b"/></form></auth></config-auth>', /not a valid XML element name/],
  ];

  it.each(cases)('%s', (_name, xml, pattern) => {
    const error = parseError(xml);
    expect(error.code).toBe('AUTH_XML_INVALID');
    expect(error.message).toMatch(pattern);
  });

  it('quotes the first 80 characters received', () => {
    const page = '<html><head><title>502 Bad Gateway</title></head><body>' + 'x'.repeat(200) + '</body></html>';
    const error = parseError(page);
    expect(page.slice(0, 80)).toHaveLength(80);
    expect(error.message).toContain(`${JSON.stringify(page.slice(0, 80))}…`);
    expect(error.message).not.toContain(page.slice(0, 81));
  });

  it('rejects a 5 MB body with a clear error', () => {
    const body = '<config-auth type="complete"><auth id="success"><banner>' + 'a'.repeat(5_000_000) + '</banner></auth></config-auth>';
    const error = parseError(body);
    expect(error.code).toBe('AUTH_XML_INVALID');
    expect(error.message).toContain(`more than the limit of ${MAX_CONFIG_AUTH_BYTES}`);
  });

  it('accepts a body just under the limit', () => {
    const banner = 'a'.repeat(MAX_CONFIG_AUTH_BYTES - 200);
    const document = parseConfigAuth(`<config-auth type="complete"><auth id="success"><banner>${banner}</banner></auth></config-auth>`);
    expect(document.type).toBe('complete');
    expect(document.type === 'complete' ? document.banner : undefined).toBe(banner);
  });

  it('rejects an opaque cut short by a comment', () => {
    const xml = '<config-auth type="auth-request"><opaque><!-- </opaque> --></opaque><auth id="main"><form><input type="text" name="u"/></form></auth></config-auth>';
    expect(parseError(xml).message).toMatch(/cannot be echoed/);
  });
});
