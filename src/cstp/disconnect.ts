// DISCONNECT ("BYE") payloads: what the client sends when it leaves, and how a headend's
// DISCONNECT is read for the log.
//
// Payload layout: empty, or one reason byte followed by ASCII text. ocserv reacts to the
// client's payload like this:
//   empty  -> temporary disconnect; the cookie stays valid for cookie-timeout, so a reconnect works
//   0xB0   -> user logout; the cookie is invalidated (unless persistent-cookies is set)
//   0x91   -> "reconnecting" on ocserv >= 1.5, but ocserv 1.1 ends the session with an error
// so acvpn sends 0xB0 only for a real logout and an empty payload for a pause or roam.
// ocserv itself sends DISCONNECT with an empty payload; an ASA may add a reason byte and text.

import { FrameType, encodeControlFrame } from './frame.js';

/** Reason bytes seen in DISCONNECT payloads. */
export const DisconnectReason = {
  /** User logout: ocserv invalidates the cookie. */
  UserLogout: 0xb0,
  /** Reconnecting; ocserv 1.1 treats it as garbage. */
  Reconnecting: 0x91,
  LocalError: 0x70,
  Paused: 0xd1,
} as const;

// The text is only for the headend's log; a short line is enough and keeps the frame tiny.
const maxLogoutTextLength = 64;

/** Builds the logout payload (0xB0 + ASCII text), for CSTP and DTLS alike. */
export function buildLogoutPayload(text: string): Buffer {
  // Non-ASCII and control characters become '?': the headend logs the text as ASCII.
  const ascii = text.slice(0, maxLogoutTextLength).replace(/[^\x20-\x7e]/g, '?');
  const payload = Buffer.alloc(1 + ascii.length);
  payload[0] = DisconnectReason.UserLogout;
  payload.write(ascii, 1, 'latin1');
  return payload;
}

/** Builds the CSTP BYE frame for a user logout. ocserv invalidates the cookie when it gets this. */
export function encodeLogoutFrame(text = 'Client logout'): Buffer {
  return encodeControlFrame(FrameType.DISCONNECT, buildLogoutPayload(text));
}

/**
 * Builds the CSTP DISCONNECT frame with an empty payload: the headend keeps the cookie, so the
 * same session can reconnect within its cookie timeout.
 */
export function encodeTemporaryDisconnectFrame(): Buffer {
  return encodeControlFrame(FrameType.DISCONNECT);
}

export interface DisconnectInfo {
  /** First payload byte, when the payload was not empty. */
  reasonCode?: number;
  /** The rest of the payload as printable text (control characters replaced, length capped). */
  text: string;
}

// A headend's text ends up in one log line; cap it so a huge payload cannot flood the log.
const maxReceivedTextLength = 256;

/** Reads a received DISCONNECT payload (CSTP or DTLS) for the log. */
export function parseDisconnectPayload(payload: Uint8Array): DisconnectInfo {
  if (payload.length === 0) return { text: '' };

  const raw = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString(
    'latin1',
    1,
    Math.min(payload.length, 1 + maxReceivedTextLength),
  );
  // Printable characters only, so that a headend cannot forge extra log lines.
  const text = raw.replace(/[\x00-\x1f\x7f-\x9f]/g, ' ').trim();
  return { reasonCode: payload[0]!, text };
}

/** One-line description of a received DISCONNECT, e.g. "reason 0xb0: Idle timeout". */
export function describeDisconnect(info: DisconnectInfo): string {
  if (info.reasonCode === undefined) return 'no reason given';
  const code = `reason 0x${info.reasonCode.toString(16).padStart(2, '0')}`;
  return info.text === '' ? code : `${code}: ${info.text}`;
}
