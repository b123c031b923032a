// The tunnel configuration: everything the headend's CONNECT response says about the tunnel,
// parsed into one typed value. The parser lives in connect-response.ts; net/ and session/ read it.

/** An IPv4 or IPv6 network with host bits cleared, e.g. { address: '10.1.0.0', prefixLength: 16 }. */
export interface IpNetwork {
  family: 4 | 6;
  address: string;
  prefixLength: number;
}

export interface TunnelConfig {
  /** Assigned IPv4 address, if any. */
  ipv4?: { address: string; prefixLength: number; netmask: string };
  /** Assigned IPv6 address, if any (prefix length from X-CSTP-Address-IP6, 128 when absent). */
  ipv6?: { address: string; prefixLength: number };

  /** DNS servers in the order the headend sent them, IPv4 and IPv6 mixed, classified by address. */
  dnsServers: string[];
  /** WINS servers, without 0.0.0.0. */
  nbnsServers: string[];
  /** Search domains from X-CSTP-Default-Domain (split on spaces, commas and semicolons). */
  defaultDomains: string[];
  /** Domains whose names are resolved through the tunnel. */
  splitDnsDomains: string[];
  /** True when the headend asks for all DNS to go through the tunnel. */
  tunnelAllDns: boolean;

  /** Networks routed into the tunnel; empty means full tunnel. */
  splitInclude: IpNetwork[];
  /** Networks kept off the tunnel. */
  splitExclude: IpNetwork[];
  /** True when the headend sent the local-LAN exclude form (0.0.0.0/32 or ::/128). */
  localLanAllowed: boolean;
  /** X-CSTP-Client-Bypass-Protocol: a family that was not assigned bypasses the tunnel. */
  clientBypassProtocol: boolean;

  /** Tunnel (inner) MTU for CSTP. */
  mtu: number;
  /** X-CSTP-Base-MTU, the headend's view of the link MTU, when sent. */
  baseMtu?: number;

  /** Seconds; undefined when the headend sent none or 0. */
  dpdSeconds?: number;
  keepaliveSeconds?: number;
  idleTimeoutSeconds?: number;
  /** Smallest non-zero of Session-Timeout, Session-Timeout-Remaining and Lease-Duration. */
  sessionTimeoutSeconds?: number;
  rekeySeconds?: number;
  rekeyMethod: 'ssl' | 'new-tunnel' | 'none';

  /** Post-login banner (X-CSTP-Banner), %XX-decoded. */
  banner?: string;
  serverName?: string;
  hostname?: string;
  proxyPacUrl?: string;

  /** DTLS parameters, when the headend offers DTLS. */
  dtls?: {
    port: number;
    appId?: string;
    sessionId?: string;
    cipherSuite: string;
    dpdSeconds?: number;
    keepaliveSeconds?: number;
    rekeySeconds?: number;
    rekeyMethod?: string;
    mtu?: number;
  };

  /** The X-CSTP-* and X-DTLS-* headers as received ([name, value] in order), for scripts; X-CSTP-Post-Auth-XML is left out because it contains the cookie. */
  rawHeaders: Array<[string, string]>;
  /** Warnings produced while parsing (bad routes skipped, host bits cleared), for the log. */
  warnings: string[];
}
