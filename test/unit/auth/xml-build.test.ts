import { describe, expect, it } from 'vitest';
import { XMLValidator } from 'fast-xml-parser';
import { buildAuthReplyXml, buildInitXml, escapeXmlText, xPadFor } from '../../../src/auth/xml-build.js';
import { AcvpnError } from '../../../src/core/errors.js';
import { testPosture } from './vectors.js';

const declaration = '<?xml version="1.0" encoding="UTF-8"?>\n';
const identity =
  '<version who="vpn">v0.1.0</version>' +
  '<device-id platform-version="6.1.0-28-amd64" device-type="x86_64" unique-id="3F2504E04F8911D39A0C0305E82C33013F2504E04F8911D39A0C0305E82C3301">linux-64</device-id>';

describe('xPadFor', () => {
  // The three X-Pad lengths openconnect 9.01 sent to ocserv 1.1.6 for bodies of 372, 362 and 369 bytes.
  it.each([
    [372, 12],
    [362, 22],
    [369, 15],
    [1, 63],
    [63, 1],
    [64, 64],
    [0, 64],
    [128, 64],
  ])('pads %i bytes with %i zeros', (bodyLength, padLength) => {
    const pad = xPadFor(bodyLength);
    expect(pad).toBe('0'.repeat(padLength));
    expect((bodyLength + pad.length) % 64).toBe(0);
  });
});

describe('buildInitXml', () => {
  it('writes the init document byte for byte', () => {
    expect(buildInitXml({ posture: testPosture, groupAccess: 'https://vpn.rig.test:4443/' })).toBe(
      declaration +
        `<config-auth client="vpn" type="init" aggregate-auth-version="2">${identity}` +
        '<group-access>https://vpn.rig.test:4443/</group-access></config-auth>\n',
    );
  });

  it('adds client-cert-fail and group-select in order', () => {
    const xml = buildInitXml({ posture: testPosture, groupAccess: 'https://h/', groupSelect: 'a&b', clientCertFail: true });
    expect(xml).toContain('<group-access>https://h/</group-access><client-cert-fail/><group-select>a&amp;b</group-select></config-auth>\n');
  });

  it('escapes posture attributes', () => {
    const xml = buildInitXml({ posture: { ...testPosture, deviceType: 'Model "X" <&>' }, groupAccess: 'https://h/' });
    expect(xml).toContain('device-type="Model &quot;X&quot; &lt;&amp;&gt;"');
    expect(XMLValidator.validate(xml)).toBe(true);
  });
});

describe('buildAuthReplyXml', () => {
  it('writes fields, opaque and group-select', () => {
    const opaqueRaw = '<opaque is-for="sg">\n<aggauth-handle>136775778</aggauth-handle>\n</opaque>';
    const xml = buildAuthReplyXml({
      posture: testPosture,
      opaqueRaw,
      fields: [
        ['username', 'alice'],
        ['password', 'a&b'],
      ],
      groupSelect: 'Staff',
    });
    expect(xml).toBe(
      declaration +
        `<config-auth client="vpn" type="auth-reply" aggregate-auth-version="2">${identity}${opaqueRaw}` +
        '<auth><username>alice</username><password>a&amp;b</password></auth><group-select>Staff</group-select></config-auth>\n',
    );
  });

  it('escapes each value once and keeps UTF-8', () => {
    const xml = buildAuthReplyXml({ posture: testPosture, fields: [['secondary_password', `p&ss<wörd>"'€ &amp;`]] });
    expect(xml).toContain(`<secondary_password>p&amp;ss&lt;wörd&gt;"'€ &amp;amp;</secondary_password>`);
  });

  it('rejects a field name that is not an XML name', () => {
    let caught: unknown;
    try {
      buildAuthReplyXml({ posture: testPosture, fields: [['a><b', 'x']] });
    } catch (error) {
      caught = error;
    }
    expect(AcvpnError.is(caught)).toBe(true);
    expect((caught as AcvpnError).code).toBe('AUTH_XML_INVALID');
  });
});

describe('escapeXmlText', () => {
  it.each([
    ['plain', 'plain'],
    ['a&b', 'a&amp;b'],
    ['<tag>', '&lt;tag&gt;'],
    ['&amp;', '&amp;amp;'],
    [`"quotes' stay"`, `"quotes' stay"`],
    ['研发', '研发'],
  ])('escapes %j', (input, output) => {
    expect(escapeXmlText(input)).toBe(output);
  });
});
