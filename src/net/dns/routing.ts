// DNS routing: the choice of which names go to the tunnel's DNS servers, made from the headend's
// tunnel configuration. The rules, modelled on the AnyConnect mobile client's split DNS behaviour:
//   - X-CSTP-Tunnel-All-DNS: true, or a full tunnel: every query goes to the tunnel DNS servers.
//   - X-CSTP-Split-DNS present: only names equal to or under those domains go to the tunnel.
//   - no split-DNS list but X-CSTP-Default-Domain: only that domain and its subdomains do.
//   - neither: no query goes to the tunnel.
// The default domain becomes a search domain in every mode. Everything here is pure.

import type { TunnelConfig } from '../../cstp/tunnel-config.js';

export type DnsRoutingMode = 'all-tunnel' | 'split' | 'none';

export interface DnsRouting {
  mode: DnsRoutingMode;
  /** Lower-case domains without a trailing dot whose names go to the tunnel in 'split' mode; empty otherwise. */
  tunnelDomains: string[];
  /** Lower-case search domains to add to the host's search list, in the headend's order. */
  searchDomains: string[];
  /** Domains from the headend that were skipped, and why, for the log. */
  warnings: string[];
}

/** The upstream kind a query goes to: the tunnel's DNS servers or the resolvers the host had before. */
export type UpstreamKind = 'tunnel' | 'host';

// One label of a host name: letters, digits, '-' and '_' (used by SRV and other service names),
// 1 to 63 octets (RFC 1035 2.3.4). Internationalized names arrive in their ASCII (punycode) form.
const labelPattern = /^[a-z0-9_-]{1,63}$/;
const maxDomainLength = 253;

/**
 * Decides where queries go for a tunnel. `fullTunnel` is true when the tunnel carries the
 * default route (no split-include networks).
 */
export function decideDnsRouting(config: TunnelConfig, fullTunnel: boolean): DnsRouting {
  const warnings: string[] = [];
  const searchDomains = normalizeDomains(config.defaultDomains, 'X-CSTP-Default-Domain', warnings);
  const splitDomains = normalizeDomains(config.splitDnsDomains, 'X-CSTP-Split-DNS', warnings);

  if (config.dnsServers.length === 0) {
    // Without a tunnel DNS server nothing can be sent into the tunnel, whatever the headend requests.
    if (config.tunnelAllDns || fullTunnel || splitDomains.length > 0 || searchDomains.length > 0) {
      warnings.push('the headend sent no DNS server (X-CSTP-DNS), so every DNS query stays on the host resolvers');
    }
    return { mode: 'none', tunnelDomains: [], searchDomains, warnings };
  }

  if (config.tunnelAllDns || fullTunnel) {
    return { mode: 'all-tunnel', tunnelDomains: [], searchDomains, warnings };
  }
  if (splitDomains.length > 0) {
    return { mode: 'split', tunnelDomains: splitDomains, searchDomains, warnings };
  }
  if (searchDomains.length > 0) {
    return { mode: 'split', tunnelDomains: [...searchDomains], searchDomains, warnings };
  }
  return { mode: 'none', tunnelDomains: [], searchDomains, warnings };
}

/**
 * Returns the upstream kind for a query name. Matching is case-insensitive and label-wise:
 * `corp.example` matches `corp.example`, `a.corp.example` and `CORP.example.`, not `notcorp.example`.
 */
export function chooseUpstream(routing: DnsRouting, name: string): UpstreamKind {
  if (routing.mode === 'all-tunnel') return 'tunnel';
  if (routing.mode === 'none') return 'host';
  return routing.tunnelDomains.some((domain) => isNameInDomain(name, domain)) ? 'tunnel' : 'host';
}

/** True when `name` equals `domain` or lies under it. `domain` must already be normalized. */
export function isNameInDomain(name: string, domain: string): boolean {
  const normalized = stripTrailingDot(name.toLowerCase());
  if (normalized === domain) return true;
  return normalized.endsWith(`.${domain}`);
}

/**
 * Lower-cases a domain and strips one trailing dot. Returns undefined when the result is not a
 * valid domain name (empty, the root ".", a label that is empty, too long or contains other
 * characters than letters, digits, '-' and '_').
 */
export function normalizeDomain(domain: string): string | undefined {
  const normalized = stripTrailingDot(domain.trim().toLowerCase());
  if (normalized.length === 0 || normalized.length > maxDomainLength) return undefined;
  return normalized.split('.').every((label) => labelPattern.test(label)) ? normalized : undefined;
}

// Domains from the headend end up in resolv.conf and in resolvectl arguments, so anything that
// is not a plain domain name (spaces, newlines, '#') is dropped here rather than written there.
function normalizeDomains(domains: string[], header: string, warnings: string[]): string[] {
  const result: string[] = [];
  for (const domain of domains) {
    const normalized = normalizeDomain(domain);
    if (normalized === undefined) {
      warnings.push(`ignored invalid domain ${JSON.stringify(domain)} from ${header}`);
      continue;
    }
    if (!result.includes(normalized)) result.push(normalized);
  }
  return result;
}

function stripTrailingDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
