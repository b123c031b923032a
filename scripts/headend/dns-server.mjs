// DNS server for the test headend: UDP and TCP port 53 on one address. It prints one JSON line
// per query ({"name", "type", "transport"}) on standard output, so a test can tell from the log
// which names reached which server.
//
// Usage: node dns-server.mjs ADDRESS ANSWER [DOMAIN...]
//   With DOMAINs it answers A queries for those domains and every name under them with ANSWER,
//   and NXDOMAIN for other names. Without DOMAINs it answers every A query with ANSWER. Other
//   query types of a name it knows get an empty NOERROR answer.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

const [address, answerAddress, ...domainArgs] = process.argv.slice(2);
if (!address || net.isIPv4(answerAddress ?? '') === false) {
  console.error(`usage: dns-server.mjs ADDRESS ANSWER [DOMAIN...] (received address=${address} answer=${answerAddress})`);
  process.exit(2);
}
const domains = domainArgs.map((domain) => domain.toLowerCase());
const port = 53;
const ttlSeconds = 5;

function isKnown(name) {
  if (domains.length === 0) return true;
  return domains.some((domain) => name === domain || name.endsWith(`.${domain}`));
}

// Returns the encoded response, or undefined for a message that is not a query with a question.
function respond(message, transport) {
  let query;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return undefined;
  }
  const question = query.questions?.[0];
  if (query.type !== 'query' || question === undefined) return undefined;

  const name = question.name.toLowerCase().replace(/\.$/, '');
  process.stdout.write(`${JSON.stringify({ name, type: question.type, transport })}\n`);

  const known = isKnown(name);
  const answers = known && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: ttlSeconds, data: answerAddress }] : [];
  const rcode = known ? 0 : 3;
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flags & dnsPacket.RECURSION_DESIRED) | rcode,
    questions: query.questions,
    answers,
  });
}

const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
udp.on('message', (message, remote) => {
  const response = respond(message, 'udp');
  if (response !== undefined) udp.send(response, remote.port, remote.address);
});

// TCP messages carry a two-byte length prefix (RFC 1035 4.2.2).
const tcp = net.createServer((socket) => {
  let pending = Buffer.alloc(0);
  socket.on('error', (err) => console.error(`dns tcp connection error: ${err.message}`));
  socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const length = pending.readUInt16BE(0);
      const response = respond(pending.subarray(2, 2 + length), 'tcp');
      pending = pending.subarray(2 + length);
      if (response === undefined) continue;
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(response.length, 0);
      socket.write(Buffer.concat([prefix, response]));
    }
  });
});

for (const server of [udp, tcp]) {
  server.on('error', (err) => {
    console.error(`dns server failed on ${address}:${port}: ${err.message}`);
    process.exit(1);
  });
}
udp.bind(port, address, () => {
  tcp.listen(port, address, () => console.error(`dns server listening on ${address}:${port}`));
});
